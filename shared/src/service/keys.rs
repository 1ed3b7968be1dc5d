//! Issued keys: the owner's list with usage and cost, a key's usage series, revocation, and the
//! holder's own keys and tokens.

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use serde_json::json;

use super::{App, ListPage, Notification, PageRequest, Tx, decode};
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{DataLayerId, KeyId, ProjectId, TemplateId, UserId};
use crate::key::{IssuedKey, KeyStatus, Tile, TileState};
use crate::mail;
use crate::permission::Permission;
use crate::secret::SecretValue;
use crate::signing::{KeyClaims, audience};
use crate::store::{Cond, Item, Query, SkRange, layout, query_all};
use crate::template::KeyTemplate;
use crate::usage::{self, Bucket, BucketBody, Granularity, Period, QuotaStatus, Refusals, Totals, UsageSeries};

/// One row of the owner's issued-keys table; `requests` and `cost` are for the period asked.
#[derive(Debug, Serialize)]
pub struct IssuedKeyRow {
    pub key_id: KeyId,
    pub template_id: TemplateId,
    pub template_name: String,
    pub user_id: UserId,
    pub user_email: String,
    pub data_layer_id: DataLayerId,
    pub issued_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub status: KeyStatus,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub requests: i64,
    pub cost: i64,
    /// The calls refused in the period, by outcome.
    pub refused: Refusals,
    /// The quota of the key (its own or its template's) and its use in the current period.
    pub quota: Option<QuotaStatus>,
    /// The key's own limits over its template's (empty: none).
    pub limits: crate::key::KeyLimits,
    /// The token's generation (rerolls so far), and until when the one before still works.
    pub generation: u32,
    pub rerolled_at: Option<DateTime<Utc>>,
    pub previous_until: Option<DateTime<Utc>>,
}

/// A project's usage in a period, summed over every key it issued: the issued-keys page's
/// totals, whichever of its pages is shown.
#[derive(Debug, Serialize)]
pub struct ProjectUsage {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The keys summed: every key of the project issued before the period's end, as its
    /// issued-keys pages list them (revoked ones included).
    pub keys: usize,
    pub requests: i64,
    /// In minor units of `currency`, as every cost of the API.
    pub cost: i64,
    pub refused: Refusals,
    pub currency: crate::money::Currency,
}

/// Keys whose usage [`App::project_usage`] reads at once.
const PROJECT_USAGE_READS: usize = 16;

/// A key as its holder sees it.
#[derive(Debug, Serialize)]
pub struct MyKey {
    #[serde(flatten)]
    pub key: IssuedKey,
    pub last_used_at: Option<DateTime<Utc>>,
    pub quota: Option<QuotaStatus>,
    /// The calls refused in the last [`MY_KEYS_REFUSALS_DAYS`] days, by outcome: why a
    /// script's calls fail, shown to the one who runs it.
    pub refused: Refusals,
}

/// How far back My keys sums a key's refusals.
pub const MY_KEYS_REFUSALS_DAYS: i64 = 7;

#[derive(Debug, Serialize)]
pub struct TokenAnswer {
    pub key_id: KeyId,
    pub token: SecretValue,
}

#[derive(Debug, Serialize)]
pub struct Revocation {
    pub key: IssuedKey,
    pub notification: Notification,
}

/// How close to now a period must end for the issued-keys page to read its buckets and the
/// newest one in a single query per key (see [`App::usage_row`]).
const RECENT_PERIOD: chrono::Duration = chrono::Duration::days(7);

fn bucket_of(item: &Item) -> Option<Bucket> {
    Some(Bucket::new(usage::parse_hour(&item.key.sk)?, item.counter(usage::REQUESTS), item.counter(usage::COST)))
}

/// The refusals of `rows`, summed over their hours.
fn refusals_of(rows: &[Item]) -> Refusals {
    rows.iter().fold(Refusals::default(), |mut sum, row| {
        sum += Refusals::of_counters(&row.counters);
        sum
    })
}

/// The hours of `buckets` with the refusals of `rows` added: one bucket per hour, an hour with
/// refusals only among them.
fn with_refusals(mut buckets: Vec<Bucket>, rows: &[Item]) -> Vec<Bucket> {
    for row in rows {
        let Some(hour) = usage::parse_hour(&row.key.sk) else { continue };
        let refused = Refusals::of_counters(&row.counters);
        match buckets.iter_mut().find(|b| b.hour == hour) {
            Some(b) => b.refused += refused,
            None => buckets.push(Bucket { refused, ..Bucket::new(hour, 0, 0) }),
        }
    }
    buckets
}

/// Whether the key had been issued by the end of the period's last UTC day. The issued-keys
/// pages and their totals list only those: a key issued on a later day had no part in it. The
/// whole day, not the instant: a console whose clock is behind the server's asks for a period
/// that ends "now" a little early, and must still see the key it just approved. Keys revoked
/// before the period stay, since calls made with them are still refused (and counted) in it.
fn existed_in(key: &IssuedKey, period: Period) -> bool {
    key.issued_at < usage::day_of(period.to - chrono::Duration::nanoseconds(1)) + chrono::Duration::days(1)
}

/// The latest `last_used_at` among buckets (of one or several shards).
fn newest_use<'a>(items: impl IntoIterator<Item = &'a Item>) -> Result<Option<DateTime<Utc>>> {
    let mut last = None;
    for item in items {
        let body: BucketBody = decode(item)?;
        last = last.max(Some(body.last_used_at));
    }
    Ok(last)
}

impl App {
    /// Each key's quota status (`None` without a quota): two batch reads, the keys' templates
    /// and then their counter items, whatever the number of keys. A counter item that no call
    /// created yet is summed from the key's buckets, as the authorizer would create it.
    pub(crate) async fn quota_statuses(&self, keys: &[IssuedKey]) -> Result<Vec<Option<QuotaStatus>>> {
        let mut wanted: std::collections::BTreeMap<_, Vec<usize>> = Default::default();
        for (i, k) in keys.iter().enumerate() {
            wanted.entry(layout::template(&k.project_id, &k.template_id)).or_default().push(i);
        }
        let unique: Vec<_> = wanted.keys().cloned().collect();
        let templates = if unique.is_empty() { Vec::new() } else { self.store.get_many(&unique).await? };
        let now = self.now();
        let mut in_force = vec![None; keys.len()];
        for (item, positions) in templates.iter().zip(wanted.values()) {
            let Some(template) = item.as_ref().map(decode::<KeyTemplate>).transpose()? else { continue };
            let limits = template.limits_at(now);
            for &i in positions {
                in_force[i] = keys[i].limits_in_force(&limits, now).quota;
            }
        }
        self.quota_statuses_in_force(keys, in_force).await
    }

    /// Each key's quota status from the quota in force for it (`in_force`, one per key): one
    /// batch read of their counter items.
    pub(crate) async fn quota_statuses_in_force(
        &self,
        keys: &[IssuedKey],
        in_force: Vec<Option<Box<crate::limits::QuotaInForce>>>,
    ) -> Result<Vec<Option<QuotaStatus>>> {
        let now = self.now();
        let items: Vec<_> = keys
            .iter()
            .zip(&in_force)
            .filter_map(|(k, q)| Some(layout::quota_counter(&k.id, &q.as_ref()?.counting.label())))
            .collect();
        let mut counted = if items.is_empty() { Vec::new() } else { self.store.get_many(&items).await? }.into_iter();
        let mut statuses = Vec::with_capacity(keys.len());
        for (key, q) in keys.iter().zip(in_force) {
            let Some(q) = q else {
                statuses.push(None);
                continue;
            };
            let counter = crate::limits::Counting::counter(q.quota.per, now);
            let used = match counted.next().flatten() {
                Some(item) => item.counter(counter),
                None => {
                    let period = crate::usage::Period { from: q.window.start, to: now };
                    self.buckets(&key.id, period).await?.iter().map(|b| b.requests).sum()
                }
            };
            statuses.push(Some(QuotaStatus {
                requests: q.quota.requests - q.top_up,
                top_up: q.top_up,
                own: q.own,
                per: q.quota.per,
                period: q.window.label[1..].to_owned(),
                used,
                resets_at: q.window.end,
            }));
        }
        Ok(statuses)
    }

    /// The hours of a key that overlap the period: its buckets from every shard, and its
    /// refusal rows, read concurrently.
    pub(crate) async fn buckets(&self, key: &KeyId, period: Period) -> Result<Vec<Bucket>> {
        let (first, last) = period.hours();
        let (items, refusals) = tokio::try_join!(self.usage_items(key, first, Some(last)), self.refusals(key, period))?;
        Ok(with_refusals(items.iter().filter_map(bucket_of).collect(), &refusals))
    }

    /// A key's calls with its narrowed tokens in the hours that overlap the period, by label and
    /// hour: one query per shard.
    pub(crate) async fn labelled(&self, key: &KeyId, period: Period) -> Result<Vec<usage::LabelUsage>> {
        let (first, last) = period.hours();
        let reads = (0..self.settings.usage_shards.max(1)).map(|shard| {
            query_all(
                self.store.as_ref(),
                Query::prefix(layout::usage_pk(key, shard), layout::USAGE_LABELS).limit(1000),
            )
        });
        let rows = try_join_all(reads).await?;
        Ok(rows
            .iter()
            .flatten()
            .filter_map(|i| usage::LabelUsage::of_row(&i.key.sk, i.counter(usage::REQUESTS), i.counter(usage::COST)))
            .filter(|r| first <= r.hour && r.hour <= last)
            .collect())
    }

    /// A key's refusal rows of the hours that overlap the period: one query.
    async fn refusals(&self, key: &KeyId, period: Period) -> Result<Vec<Item>> {
        let (first, last) = period.hours();
        let mut q = Query::prefix(layout::usage_pk(key, 0), "").limit(1000);
        q.sk = SkRange::Between(layout::refusal_hour(first), layout::refusal_hour(last));
        Ok(query_all(self.store.as_ref(), q).await?)
    }

    async fn usage_items(&self, key: &KeyId, first: DateTime<Utc>, last: Option<DateTime<Utc>>) -> Result<Vec<Item>> {
        Ok(usage_items(self.store.as_ref(), self.settings.usage_shards, key, first, last).await?)
    }

    /// When the key was last used: the newest bucket of any shard.
    pub(crate) async fn last_used(&self, key: &KeyId) -> Result<Option<DateTime<Utc>>> {
        let reads = (0..self.settings.usage_shards.max(1)).map(|shard| {
            let mut q = Query::prefix(layout::usage_pk(key, shard), layout::USAGE_HOURS).limit(1);
            q.descending = true;
            async move { self.store.query(&q).await }
        });
        let pages = try_join_all(reads).await?;
        newest_use(pages.iter().flat_map(|p| &p.items))
    }

    /// A key's totals in the period and when it was last used. For a period that ends within
    /// [`RECENT_PERIOD`] of now, one query per shard reads the buckets from the period's first
    /// hour to the newest, which holds both; only a key unused since the period began needs a
    /// second, one-item query for its last use. Older periods read the period and the newest
    /// bucket separately (concurrently), so as not to read every bucket since.
    ///
    /// The refusal rows are read by one more query, concurrently.
    async fn usage_row(&self, key: &KeyId, period: Period) -> Result<(Totals, Option<DateTime<Utc>>)> {
        let (first, last) = period.hours();
        if self.now() - period.to > RECENT_PERIOD {
            let (buckets, last_used_at) = tokio::try_join!(self.buckets(key, period), self.last_used(key))?;
            return Ok((usage::totals(&buckets), last_used_at));
        }
        let (items, refusals) = tokio::try_join!(self.usage_items(key, first, None), self.refusals(key, period))?;
        let refused = refusals_of(&refusals);
        if items.is_empty() {
            return Ok((Totals { refused, ..Totals::default() }, self.last_used(key).await?));
        }
        let last_sk = layout::usage_hour(last);
        let in_period: Vec<Bucket> = items.iter().filter(|i| i.key.sk <= last_sk).filter_map(bucket_of).collect();
        let newest = items.iter().map(|i| &i.key.sk).max();
        let totals = Totals { refused, ..usage::totals(&in_period) };
        Ok((totals, newest_use(items.iter().filter(|i| Some(&i.key.sk) == newest))?))
    }

    /// The owner's table of issued keys, with each key's requests and cost in the period.
    pub async fn list_issued_keys(
        &self,
        caller: &Caller,
        id: &ProjectId,
        period: Period,
        page: &PageRequest,
    ) -> Result<ListPage<IssuedKeyRow>> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        let keys: ListPage<IssuedKey> = self.page(Query::prefix(layout::project_pk(id), layout::KEYS), page).await?;
        // Keys issued after the period had no part in it: not listed (a page may then be shorter
        // than asked; its cursor goes on from the last key read).
        let existed: Vec<IssuedKey> = keys.items.into_iter().filter(|k| existed_in(k, period)).collect();
        let quotas = self.quota_statuses(&existed).await?;
        let rows =
            try_join_all(existed.into_iter().zip(quotas).map(|(k, quota)| self.issued_row(k, quota, period))).await?;
        Ok(ListPage { items: rows, next_cursor: keys.next_cursor })
    }

    /// One key of the project as a row of the issued-keys table, for its managers and its
    /// holder: the key page's figures (the period's requests, cost and refusals, its quota now).
    pub async fn issued_key(
        &self,
        caller: &Caller,
        id: &ProjectId,
        kid: &KeyId,
        period: Period,
    ) -> Result<IssuedKeyRow> {
        let (_, key) = self.key_for(caller, id, kid).await?;
        let quota = self.quota_statuses(std::slice::from_ref(&key)).await?.pop().flatten();
        self.issued_row(key, quota, period).await
    }

    async fn issued_row(&self, k: IssuedKey, quota: Option<QuotaStatus>, period: Period) -> Result<IssuedKeyRow> {
        let (Totals { requests, cost, refused }, last_used_at) = self.usage_row(&k.id, period).await?;
        Ok(IssuedKeyRow {
            key_id: k.id,
            template_id: k.template_id,
            template_name: k.template_name,
            user_id: k.user_id,
            user_email: k.user_email,
            data_layer_id: k.data_layer_id,
            issued_at: k.issued_at,
            expires_at: k.expires_at,
            status: k.status,
            revoked_at: k.revoked_at,
            last_used_at,
            requests,
            cost,
            refused,
            quota,
            limits: k.limits,
            generation: k.generation,
            rerolled_at: k.rerolled_at,
            previous_until: k.previous_until,
        })
    }

    /// The project's usage in the period over all its keys. The store keeps usage per key and
    /// hour (sharded), in the partitions the authorizer writes on every call, and no project
    /// total beside them: a total on the hot path would be one more write per call, on one item
    /// that every key of the project would contend for. So the total is summed here, on read:
    /// the project's key records with one query (paged by the store), then each key's hour
    /// buckets of the period and its refusal rows (one query per shard, and one), for
    /// [`PROJECT_USAGE_READS`] keys at a time. It agrees with the pages and the export, which
    /// read the same buckets.
    pub async fn project_usage(&self, caller: &Caller, id: &ProjectId, period: Period) -> Result<ProjectUsage> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        let mut keys: Vec<IssuedKey> = self.load_all(layout::project_pk(id), layout::KEYS).await?;
        keys.retain(|k| existed_in(k, period));
        let reads: Vec<_> = keys.iter().map(|k| self.buckets(&k.id, period)).collect();
        let mut reads = stream::iter(reads).buffer_unordered(PROJECT_USAGE_READS);
        let mut sum = Totals::default();
        while let Some(buckets) = reads.next().await {
            buckets?.iter().for_each(|b| sum.add(b));
        }
        let Totals { requests, cost, refused } = sum;
        Ok(ProjectUsage {
            from: period.from,
            to: period.to,
            keys: keys.len(),
            requests,
            cost,
            refused,
            currency: self.settings.currency.clone(),
        })
    }

    /// A key of the project, for its managers or its holder.
    pub(crate) async fn key_for(
        &self,
        caller: &Caller,
        id: &ProjectId,
        kid: &KeyId,
    ) -> Result<(crate::project::Access, IssuedKey)> {
        let access = self.access(caller, id).await?;
        let key = self.load::<IssuedKey>(&layout::key(id, kid)).await?.map(|(k, _)| k);
        match key {
            Some(k) if k.user_id == caller.id || access.can(Permission::ProjectManage) => Ok((access, k)),
            _ => {
                access.require(Permission::ProjectManage)?;
                Err(Error::not_found("key"))
            }
        }
    }

    pub async fn key_usage(
        &self,
        caller: &Caller,
        id: &ProjectId,
        kid: &KeyId,
        period: Period,
        granularity: Granularity,
    ) -> Result<UsageSeries> {
        let (_, key) = self.key_for(caller, id, kid).await?;
        let (buckets, labelled) = tokio::try_join!(self.buckets(&key.id, period), self.labelled(&key.id, period))?;
        let quota = self.quota_statuses(std::slice::from_ref(&key)).await?.pop().flatten();
        Ok(UsageSeries {
            key_id: key.id,
            granularity,
            from: period.from,
            to: period.to,
            points: usage::series(&buckets, period, granularity),
            totals: usage::totals(&buckets),
            quota,
            by_label: usage::by_label(&labelled),
        })
    }

    /// Revokes a key (its managers or its holder); the next call with it is refused.
    pub async fn revoke(&self, caller: &Caller, id: &ProjectId, kid: &KeyId) -> Result<Revocation> {
        let (access, key) = self.key_for(caller, id, kid).await?;
        let now = self.now();
        let mut tx = self.tx();
        let revoked = self.plan_revoke(&mut tx, &key, &caller.id).await?;
        tx.audit(
            id,
            caller,
            AuditAction::KeyRevoked,
            kid,
            json!({"user_id": key.user_id, "template_id": key.template_id, "data_layer_id": key.data_layer_id}),
            now,
        )
        .mail(mail::key_revoked(&self.settings.console_url, &access.project, &revoked), now);
        let notification = self.commit(tx, |_| Error::conflict("the key changed meanwhile; try again")).await?;
        self.key_events.key_retired(id, kid);
        tracing::info!(key_id = %kid, project_id = %id, "key revoked");
        Ok(Revocation { key: revoked, notification })
    }

    /// Adds to `tx` the revoked key and its holder's tile (which lets them request again).
    pub(crate) async fn plan_revoke(&self, tx: &mut Tx, key: &IssuedKey, by: &UserId) -> Result<IssuedKey> {
        let (id, kid) = (&key.project_id, &key.id);
        let revoked = key.revoke(by, self.now())?;
        tx.put_key(&revoked, Cond::Version(key.version));
        let tile_key = layout::tile(id, &key.user_id, &key.template_id);
        if let Some((tile, version)) = self.load::<Tile>(&tile_key).await?
            && tile.key_id.as_ref() == Some(kid)
        {
            let tile = Tile { state: TileState::Revoked, reason: None, ..tile };
            tx.put(tile_key, version + 1, &tile, Cond::Version(version));
        }
        Ok(revoked)
    }

    /// The caller's own key, found through the holder index (so nobody reaches another's).
    pub(crate) async fn my_key(&self, caller: &Caller, kid: &KeyId) -> Result<IssuedKey> {
        let sk = layout::key_by_holder(&caller.id, kid).sk;
        let page = self.store.query(&Query::prefix(layout::user_pk(&caller.id), &sk).on_index().limit(1)).await?;
        match page.items.first() {
            Some(item) if item.index_key.as_ref().is_some_and(|k| k.sk == sk) => decode(item),
            _ => Err(Error::not_found("key")),
        }
    }

    pub async fn my_keys(&self, caller: &Caller, page: &PageRequest) -> Result<ListPage<MyKey>> {
        let keys: ListPage<IssuedKey> =
            self.page(Query::prefix(layout::user_pk(&caller.id), layout::KEYS).on_index(), page).await?;
        let quotas = self.quota_statuses(&keys.items).await?;
        let now = self.now();
        let recent = Period { from: now - chrono::Duration::days(MY_KEYS_REFUSALS_DAYS), to: now };
        let items = try_join_all(keys.items.into_iter().zip(quotas).map(|(key, quota)| async move {
            let (last_used_at, refusals) = tokio::try_join!(self.last_used(&key.id), self.refusals(&key.id, recent))?;
            let refused = refusals_of(&refusals);
            Ok::<_, Error>(MyKey { key, last_used_at, quota, refused })
        }))
        .await?;
        Ok(ListPage { items, next_cursor: keys.next_cursor })
    }

    /// Re-creates a key's token from its record (tokens are never stored).
    pub(crate) fn token_of(&self, key: &IssuedKey) -> Result<SecretValue> {
        let claims = KeyClaims {
            iss: self.keys.issuer().to_owned(),
            sub: key.user_id.to_string(),
            aud: audience(&key.project_id),
            jti: key.id.to_string(),
            iat: key.issued_at.timestamp(),
            exp: key.expires_at.map(|t| t.timestamp()),
            nbf: None,
            tpl: key.template_id.to_string(),
            generation: key.generation,
            narrowed: None,
        };
        self.keys.sign(&claims).map_err(Error::internal)
    }

    pub async fn my_key_token(&self, caller: &Caller, kid: &KeyId) -> Result<TokenAnswer> {
        let key = self.my_key(caller, kid).await?;
        if !key.is_usable(self.now()) {
            return Err(Error::conflict("the key is revoked or expired"));
        }
        Ok(TokenAnswer { key_id: key.id.clone(), token: self.token_of(&key)? })
    }
}

/// The buckets of every one of `shards` shards of `key` from hour `first` to hour `last` (to
/// the newest when `None`), newest first: what the pages read, and what a quota set again
/// starts from (the authorizer).
pub(crate) async fn usage_items(
    store: &dyn crate::store::Store,
    shards: u32,
    key: &KeyId,
    first: DateTime<Utc>,
    last: Option<DateTime<Utc>>,
) -> std::result::Result<Vec<Item>, crate::store::StoreError> {
    let lo = layout::usage_hour(first);
    let hi = last.map_or_else(|| format!("{}\u{10FFFF}", layout::USAGE_HOURS), layout::usage_hour);
    let reads = (0..shards.max(1)).map(|shard| {
        let mut q = Query::prefix(layout::usage_pk(key, shard), "").limit(1000);
        q.sk = SkRange::Between(lo.clone(), hi.clone());
        q.descending = true;
        query_all(store, q)
    });
    Ok(try_join_all(reads).await?.into_iter().flatten().collect())
}
