//! The production store: one DynamoDB table (on-demand), items keyed `pk`/`sk`, one global
//! secondary index `gsi1` on `gpk`/`gsk`. Every multi-item change is one `TransactWriteItems`
//! with conditions (the SDK gives each an idempotency token, so its retries apply it once); a
//! counter update is one `UpdateItem` with atomic `ADD` (and, with a ceiling, a condition),
//! which is never sent twice (`update_counters`).
//!
//! Attributes: `pk`, `sk`, `gpk`, `gsk` (strings), `v` (version), `body` (the entity as
//! JSON), and `c_<name>` per counter.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TransactWriteItem, Update,
};

use super::{
    Cond, Counters, Cursor, Increment, Index, Item, ItemKey, Page, Query, SkRange, Store, StoreError, Write,
    check_increments, check_transaction,
};

pub const INDEX_NAME: &str = "gsi1";
const COUNTER_PREFIX: &str = "c_";

pub struct DynamoStore {
    client: Client,
    /// The same client (and connection pool) without the SDK's retries, for counter updates.
    once: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let once = Client::from_conf(client.config().to_builder().retry_config(RetryConfig::disabled()).build());
        Self { client, once, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table (on-demand, with its index) unless it exists: for local runs and tests.
    /// In production the SAM template creates it.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        if self.client.describe_table().table_name(&self.table).send().await.is_ok() {
            return Ok(());
        }
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(invalid)
        };
        let key =
            |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(invalid);
        let index = GlobalSecondaryIndex::builder()
            .index_name(INDEX_NAME)
            .key_schema(key("gpk", KeyType::Hash)?)
            .key_schema(key("gsk", KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(invalid)?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("gpk")?)
            .attribute_definitions(attr("gsk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(index)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another process created it meanwhile.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::InvalidTransaction(e.to_string())
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key_map(key: &ItemKey) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(&key.pk)), ("sk".to_owned(), s(&key.sk))])
}

fn item_map(item: &Item) -> HashMap<String, AttributeValue> {
    let mut map = key_map(&item.key);
    if let Some(index) = &item.index_key {
        map.insert("gpk".into(), s(&index.pk));
        map.insert("gsk".into(), s(&index.sk));
    }
    map.insert("v".into(), n(item.version));
    map.insert("body".into(), s(&item.body));
    for (name, value) in &item.counters {
        map.insert(format!("{COUNTER_PREFIX}{name}"), n(value));
    }
    map
}

fn from_map(map: &HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
    let text = |name: &str| map.get(name).and_then(|v| v.as_s().ok()).cloned();
    let corrupt = |what: &str| {
        StoreError::Corrupt(format!("{:?}/{:?}", text("pk"), text("sk")), format!("missing or bad {what}").into())
    };
    let key = ItemKey::new(text("pk").ok_or_else(|| corrupt("pk"))?, text("sk").ok_or_else(|| corrupt("sk"))?);
    let index_key = text("gpk").zip(text("gsk")).map(|(p, s)| ItemKey::new(p, s));
    let version = match map.get("v") {
        Some(v) => v.as_n().ok().and_then(|n| n.parse().ok()).ok_or_else(|| corrupt("v"))?,
        None => 0,
    };
    let mut counters = std::collections::BTreeMap::new();
    for (name, value) in map {
        if let Some(counter) = name.strip_prefix(COUNTER_PREFIX) {
            let v = value.as_n().ok().and_then(|n| n.parse().ok()).ok_or_else(|| corrupt(name))?;
            counters.insert(counter.to_owned(), v);
        }
    }
    Ok(Item { key, index_key, version, body: text("body").unwrap_or_default(), counters })
}

/// The condition expression of `cond`, with its value.
fn condition(cond: Cond) -> (Option<&'static str>, Option<(String, AttributeValue)>) {
    match cond {
        Cond::Always => (None, None),
        Cond::NotExists => (Some("attribute_not_exists(pk)"), None),
        Cond::Exists => (Some("attribute_exists(pk)"), None),
        Cond::Version(v) => (Some("v = :expected"), Some((":expected".to_owned(), n(v)))),
    }
}

/// The update expression of an increment, with its condition when it has a ceiling or a pace.
struct CounterUpdate {
    expression: String,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

/// Which conditional write moves a pace on: from now (the rate was idle: its time is not ahead
/// of now) or from its time (busy: ahead of now, within the burst). DynamoDB cannot take the
/// later of the two in one expression, so the caller tries one and, refused, reads the item
/// the refusal returns to know whether to try the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PaceFrom {
    Now,
    Stored,
}

fn counter_update(inc: &Increment, from: PaceFrom) -> CounterUpdate {
    let mut names = HashMap::from([("#b".to_owned(), "body".to_owned()), ("#v".to_owned(), "v".to_owned())]);
    let mut values = HashMap::from([(":b".to_owned(), s(&inc.body)), (":one".to_owned(), n(1))]);
    let mut sets = vec!["#b = :b".to_owned(), "#v = if_not_exists(#v, :one)".to_owned()];
    let mut adds = Vec::new();
    for (i, (name, amount)) in inc.add.iter().enumerate() {
        names.insert(format!("#c{i}"), format!("{COUNTER_PREFIX}{name}"));
        values.insert(format!(":c{i}"), n(amount));
        adds.push(format!("#c{i} :c{i}"));
    }
    let mut conditions = Vec::new();
    if let Some(c) = inc.ceiling {
        // An absent counter is 0, which fits whenever the room left is not negative (checked
        // before sending: see `Store::count`).
        names.insert("#cap".to_owned(), format!("{COUNTER_PREFIX}{}", c.counter));
        values.insert(":room".to_owned(), n(c.max - inc.adds(c.counter)));
        conditions.push("(attribute_not_exists(#cap) OR #cap <= :room)".to_owned());
    }
    if let Some(p) = inc.pace {
        names.insert("#tat".to_owned(), format!("{COUNTER_PREFIX}{}", p.counter));
        values.insert(":now".to_owned(), n(p.now));
        match from {
            PaceFrom::Now => {
                values.insert(":next".to_owned(), n(p.now + p.interval));
                conditions.push("(attribute_not_exists(#tat) OR #tat <= :now)".to_owned());
                sets.push("#tat = :next".to_owned());
            }
            PaceFrom::Stored => {
                values.insert(":latest".to_owned(), n(p.now + p.tolerance));
                values.insert(":interval".to_owned(), n(p.interval));
                conditions.push("(#tat > :now AND #tat <= :latest)".to_owned());
                sets.push("#tat = #tat + :interval".to_owned());
            }
        }
    }
    let mut expression = format!("SET {}", sets.join(", "));
    if !adds.is_empty() {
        expression.push_str(&format!(" ADD {}", adds.join(", ")));
    }
    let condition = (!conditions.is_empty()).then(|| conditions.join(" AND "));
    CounterUpdate { expression, condition, names, values }
}

impl DynamoStore {
    fn transact_item(&self, write: &Write) -> Result<TransactWriteItem, StoreError> {
        Ok(match write {
            Write::Put { item, cond } => {
                let (expr, value) = condition(*cond);
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item_map(item)))
                    .set_condition_expression(expr.map(Into::into))
                    .set_expression_attribute_values(value.map(|v| HashMap::from([v])))
                    .build()
                    .map_err(invalid)?;
                TransactWriteItem::builder().put(put).build()
            }
            Write::Delete { key, cond } => {
                let (expr, value) = condition(*cond);
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_map(key)))
                    .set_condition_expression(expr.map(Into::into))
                    .set_expression_attribute_values(value.map(|v| HashMap::from([v])))
                    .build()
                    .map_err(invalid)?;
                TransactWriteItem::builder().delete(delete).build()
            }
            Write::Check { key, cond } => {
                let (expr, value) = condition(*cond);
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_map(key)))
                    .condition_expression(expr.unwrap_or("attribute_exists(pk) OR attribute_not_exists(pk)"))
                    .set_expression_attribute_values(value.map(|v| HashMap::from([v])))
                    .build()
                    .map_err(invalid)?;
                TransactWriteItem::builder().condition_check(check).build()
            }
            Write::Increment(inc) => {
                let u = counter_update(inc, PaceFrom::Now);
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_map(&inc.key)))
                    .update_expression(u.expression)
                    .set_condition_expression(u.condition)
                    .set_expression_attribute_names(Some(u.names))
                    .set_expression_attribute_values(Some(u.values))
                    .build()
                    .map_err(invalid)?;
                TransactWriteItem::builder().update(update).build()
            }
        })
    }

    /// One counter update outside a transaction: half the write cost of a transaction, and a
    /// busy item's concurrent updates queue instead of refusing each other. It answers the
    /// item's counters after the update; a ceiling that does not hold is `ConditionFailed`.
    ///
    /// An `ADD` is not idempotent, and `UpdateItem` takes no request token: when its answer is
    /// lost (a timeout, a connection closed after the request went out), DynamoDB may have
    /// applied it, and the SDK's own retry would count the call twice. So the SDK does not
    /// retry it; keygate retries only the answers that say DynamoDB applied nothing
    /// ([`not_applied`]), and otherwise fails: the call is denied, never counted twice.
    async fn update_counters(&self, inc: &Increment) -> Result<Counters, StoreError> {
        if inc.ceiling.is_some_and(|c| c.max - inc.adds(c.counter) < 0) {
            return Err(StoreError::Refused { index: 0, counters: Counters::new() });
        }
        let mut from = match inc.pace {
            Some(p) if p.busy => PaceFrom::Stored,
            _ => PaceFrom::Now,
        };
        let mut attempt = 1;
        let mut pace_tries = 1;
        loop {
            let u = counter_update(inc, from);
            let update = self
                .once
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_map(&inc.key)))
                .update_expression(u.expression)
                .set_condition_expression(u.condition)
                .set_expression_attribute_names(Some(u.names))
                .set_expression_attribute_values(Some(u.values))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
            match update.send().await {
                Ok(out) => {
                    return Ok(out.attributes().map(from_map).transpose()?.map(|i| i.counters).unwrap_or_default());
                }
                Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                    let old = match e.as_service_error() {
                        Some(UpdateItemError::ConditionalCheckFailedException(failed)) => failed.item().cloned(),
                        _ => None,
                    };
                    let counters = match old {
                        Some(map) => from_map(&map)?.counters,
                        None => Counters::new(),
                    };
                    // Refused by the ceiling or the pace as the item stands, or only the other
                    // conditional write of a pace is the right one (tried once more).
                    let mut trial = counters.clone();
                    if inc.pace.is_none() || pace_tries >= PACE_TRIES || !inc.apply(&mut trial) {
                        return Err(StoreError::Refused { index: 0, counters });
                    }
                    let tat = inc.pace.map_or(0, |p| counters.get(p.counter).copied().unwrap_or(0));
                    from = if inc.pace.is_some_and(|p| tat > p.now) { PaceFrom::Stored } else { PaceFrom::Now };
                    pace_tries += 1;
                }
                Err(e) if attempt < INCREMENT_ATTEMPTS && not_applied(&e) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
    }
}

/// Conditional writes one paced call may try when other instances move the pace between them.
const PACE_TRIES: u32 = 4;

/// Attempts of one counter update when DynamoDB says it applied nothing (throttling).
const INCREMENT_ATTEMPTS: u32 = 4;

/// Whether an `UpdateItem` error says the update was not applied: refusals for load or
/// conflict, sent before DynamoDB changes anything. A lost or unreadable answer, or an internal
/// error, may follow an applied update.
fn not_applied(e: &SdkError<UpdateItemError, aws_sdk_dynamodb::config::http::HttpResponse>) -> bool {
    e.as_service_error().is_some_and(|e| {
        e.is_provisioned_throughput_exceeded_exception()
            || e.is_request_limit_exceeded()
            || e.is_throttling_exception()
            || e.is_transaction_conflict_exception()
            || e.is_replicated_write_conflict_exception()
    })
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item().map(from_map).transpose()
    }

    /// `BatchGetItem` (consistent reads), in chunks of its limit of 100 keys; keys DynamoDB
    /// leaves unprocessed (throttling) are asked again after a short backoff.
    async fn get_many(&self, keys: &[ItemKey]) -> Result<Vec<Option<Item>>, StoreError> {
        let unique: Vec<&ItemKey> = keys.iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let mut found: HashMap<ItemKey, Item> = HashMap::new();
        for chunk in unique.chunks(100) {
            let mut pending: Vec<_> = chunk.iter().map(|k| key_map(k)).collect();
            for attempt in 0u32.. {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(invalid)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(unavailable)?;
                for map in out.responses().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                    let item = from_map(map)?;
                    found.insert(item.key.clone(), item);
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                if attempt == 5 {
                    return Err(StoreError::Unavailable("DynamoDB left keys of a batch read unprocessed".into()));
                }
                tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
            }
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn query(&self, q: &Query) -> Result<Page, StoreError> {
        q.check_cursor()?;
        let (pk_attr, sk_attr) = match q.index {
            Index::Primary => ("pk", "sk"),
            Index::Secondary => ("gpk", "gsk"),
        };
        let mut names = HashMap::from([("#p".to_owned(), pk_attr.to_owned())]);
        let mut values = HashMap::from([(":p".to_owned(), s(&q.pk))]);
        let expression = match &q.sk {
            SkRange::Prefix(prefix) if prefix.is_empty() => "#p = :p".to_owned(),
            SkRange::Prefix(prefix) => {
                names.insert("#s".into(), sk_attr.into());
                values.insert(":a".into(), s(prefix));
                "#p = :p AND begins_with(#s, :a)".to_owned()
            }
            SkRange::Between(a, b) => {
                names.insert("#s".into(), sk_attr.into());
                values.insert(":a".into(), s(a));
                values.insert(":b".into(), s(b));
                "#p = :p AND #s BETWEEN :a AND :b".to_owned()
            }
        };
        let start = q.cursor.as_ref().map(|c| {
            let mut key = key_map(&c.key);
            if let Some(index) = &c.index_key {
                key.insert("gpk".into(), s(&index.pk));
                key.insert("gsk".into(), s(&index.sk));
            }
            key
        });
        let limit = q.limit.clamp(1, 1000);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name((q.index == Index::Secondary).then(|| INDEX_NAME.to_owned()))
            .consistent_read(q.index == Index::Primary)
            .key_condition_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(!q.descending)
            // One more than asked tells whether another page exists.
            .limit(limit as i32 + 1)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable)?;
        let mut items = out.items().iter().map(from_map).collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > limit || out.last_evaluated_key().is_some();
        items.truncate(limit);
        let next = if more { items.last().map(|i| Cursor::after(i, q.index)) } else { None };
        Ok(Page { items, next })
    }

    /// `Scan` (consistent reads), one page of at most `limit` items; DynamoDB's own
    /// `LastEvaluatedKey` is the cursor.
    async fn scan(&self, after: Option<Cursor>, limit: usize) -> Result<Page, StoreError> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(after.map(|c| key_map(&c.key)))
            .send()
            .await
            .map_err(unavailable)?;
        let items = out.items().iter().map(from_map).collect::<Result<Vec<_>, _>>()?;
        let next = match out.last_evaluated_key() {
            Some(last) => {
                let attr = |name: &str| last.get(name).and_then(|v| v.as_s().ok()).cloned();
                match (attr("pk"), attr("sk")) {
                    (Some(pk), Some(sk)) => Some(Cursor { key: ItemKey::new(pk, sk), index_key: None }),
                    _ => {
                        return Err(StoreError::Unavailable("DynamoDB's scan ended on a key without pk and sk".into()));
                    }
                }
            }
            None => None,
        };
        Ok(Page { items, next })
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_transaction(&writes)?;
        if let [Write::Increment(inc)] = writes.as_slice() {
            return self.update_counters(inc).await.map(drop).map_err(super::refused_is_a_condition);
        }
        let items = writes.iter().map(|w| self.transact_item(w)).collect::<Result<Vec<_>, _>>()?;
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => {
                let e = e.into_err();
                if let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                    cancelled,
                ) = &e
                {
                    let reasons = cancelled.cancellation_reasons();
                    if let Some(index) = reasons.iter().position(|r| r.code() == Some("ConditionalCheckFailed")) {
                        return Err(StoreError::ConditionFailed { index });
                    }
                    if reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
                        return Err(StoreError::Contention);
                    }
                }
                if e.is_transaction_in_progress_exception() {
                    return Err(StoreError::Contention);
                }
                Err(unavailable(e))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// One `UpdateItem` per increment, in order; after a failure, the increments already
    /// applied are subtracted again. If that too fails, the earlier items keep the call (a
    /// quota counter counts one call that was not allowed, and billed nothing): logged.
    async fn count(&self, increments: Vec<Increment>) -> Result<Vec<Counters>, StoreError> {
        check_increments(&increments)?;
        let mut counted = Vec::with_capacity(increments.len());
        for (index, inc) in increments.iter().enumerate() {
            match self.update_counters(inc).await {
                Ok(counters) => counted.push(counters),
                Err(e) => {
                    for applied in increments[..index].iter().rev() {
                        if let Err(undo) = self.update_counters(&applied.undo()).await {
                            tracing::error!(error = %undo, item = %applied.key.sk, "a counter keeps a call that was not counted");
                        }
                    }
                    return Err(match e {
                        StoreError::Refused { counters, .. } => StoreError::Refused { index, counters },
                        e => e,
                    });
                }
            }
        }
        Ok(counted)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::types::error::{InternalServerError, ThrottlingException};

    use super::*;

    fn answered(status: u16, error: UpdateItemError) -> SdkError<UpdateItemError, HttpResponse> {
        SdkError::service_error(error, HttpResponse::new(status.try_into().unwrap(), "".into()))
    }

    /// The emulator closes every connection; this server keeps them open (answering `{}` to
    /// every request) and counts them.
    async fn keep_alive_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut socket = BufReader::new(socket);
                    loop {
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap();
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        socket.read_exact(&mut body).await.unwrap();
                        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 2\r\n\r\n{}";
                        socket.get_mut().write_all(answer.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn counter_updates_share_the_store_connections() {
        use aws_sdk_dynamodb::config::{Credentials, Region};
        let (url, accepted) = keep_alive_server().await;
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(url)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        let store = DynamoStore::new(Client::from_conf(config), "t");
        let key = ItemKey::new("usage#key", "hour");
        for _ in 0..3 {
            assert!(store.get(&key).await.unwrap().is_none());
            store.update_counters(&Increment::new(key.clone(), vec![("requests", 1)], "{}".into())).await.unwrap();
        }
        // One connection for all six calls: no connection (nor TLS handshake) of their own.
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn only_refusals_that_applied_nothing_are_retried() {
        let throttled = UpdateItemError::ThrottlingException(ThrottlingException::builder().build());
        assert!(not_applied(&answered(400, throttled)));
        // An internal error may follow an applied update; so may a lost answer.
        let internal = UpdateItemError::InternalServerError(InternalServerError::builder().build());
        assert!(!not_applied(&answered(500, internal)));
        assert!(!not_applied(&SdkError::timeout_error("no answer")));
    }
}
