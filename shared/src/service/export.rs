//! The billing export: one row per key per hour or day with usage, for the platform's billing.
//!
//! It is paged by keys, like the issued-keys page it must agree with: one answer covers one
//! page of keys (at most [`MAX_EXPORT_KEYS`]), read from the store key by key, and names the
//! next page. So one answer's memory is bounded by its page (at most 50 keys × 31 days × 24
//! hours = 37,200 rows, about 4 MB: under the 6 MB a Lambda function may answer), whatever the
//! number of keys or the length of the period.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::future::try_join_all;
use serde::Serialize;

use super::{App, ListPage, PageRequest};
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::ProjectId;
use crate::key::IssuedKey;
use crate::permission::Permission;
use crate::store::{Query, layout};
use crate::usage::{Granularity, Period, Refusals, Totals};

/// Keys per answer of the export.
pub const MAX_EXPORT_KEYS: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

impl ExportFormat {
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s {
            None | Some("csv") => Ok(Self::Csv),
            Some("jsonl") => Ok(Self::Jsonl),
            Some(_) => Err(Error::invalid("format", "must be csv or jsonl")),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Jsonl => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
        }
    }
}

/// One line of the export.
#[derive(Debug, Serialize)]
pub struct ExportRow<'a> {
    pub key_id: &'a str,
    pub user_id: &'a str,
    pub user_email: &'a str,
    pub template_id: &'a str,
    pub template_name: &'a str,
    /// The hour or day the row counts (UTC, RFC 3339).
    pub start: String,
    pub requests: i64,
    pub cost: i64,
    /// The calls refused in the row's hour or day, by outcome (never billed). In the CSV: a
    /// `refused` column with their total, then one `refused_<outcome>` column per outcome.
    pub refused: Refusals,
    /// `cost` as money in the deployment's currency: a decimal of its major unit (`0.21`).
    pub amount: String,
    /// The ISO 4217 code of that currency (`EUR`).
    pub currency: &'a str,
    /// The narrowed tokens' label these calls were made under; empty for the key's own calls
    /// (and every refusal). A key's rows of one period sum to its calls.
    pub label: &'a str,
}

/// The CSV's columns: the row's text, its usage, its refusals, then the cost as money. New
/// columns are only ever added at the end, so that a reader by position keeps working.
fn header() -> Vec<String> {
    let text =
        ["key_id", "user_id", "user_email", "template_id", "template_name", "start", "requests", "cost", "refused"];
    let outcomes = Refusals::OUTCOMES.iter().map(|o| format!("refused_{o}"));
    let money = ["amount", "currency", "label"].map(str::to_owned);
    text.iter().map(|c| (*c).to_owned()).chain(outcomes).chain(money).collect()
}

/// One answer of the export: its body, and where the next page of keys starts.
#[derive(Debug)]
pub struct Export {
    pub body: Vec<u8>,
    pub rows: usize,
    pub next_cursor: Option<String>,
}

/// A CSV cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR: OWASP's list)
/// is written with a leading `'`: owners name templates, users choose their ids and addresses,
/// and billing opens the file. Every text cell of the CSV goes through here; JSON Lines, which
/// no spreadsheet runs, keeps the values as they are.
fn inert(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}").into() } else { text.into() }
}

impl ExportRow<'_> {
    /// The row as CSV cells, in [`header`]'s order, every text cell made inert.
    fn csv_record(&self) -> Vec<std::borrow::Cow<'_, str>> {
        let text = [self.key_id, self.user_id, self.user_email, self.template_id, self.template_name, &self.start];
        let numbers = [self.requests, self.cost, self.refused.total()]
            .into_iter()
            .chain(self.refused.counts().map(|(_, n)| n))
            .map(|n| std::borrow::Cow::Owned(n.to_string()));
        let money = [std::borrow::Cow::Borrowed(self.amount.as_str()), inert(self.currency), inert(self.label)];
        text.into_iter().map(inert).chain(numbers).chain(money).collect()
    }
}

impl App {
    /// One page of the export of project `id`'s usage in `period` (owners only).
    pub async fn export_usage(
        &self,
        caller: &Caller,
        id: &ProjectId,
        period: Period,
        granularity: Granularity,
        format: ExportFormat,
        page: &PageRequest,
    ) -> Result<Export> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        let page = PageRequest { limit: page.limit.min(MAX_EXPORT_KEYS), cursor: page.cursor.clone() };
        let keys: ListPage<IssuedKey> = self.page(Query::prefix(layout::project_pk(id), layout::KEYS), &page).await?;
        // The keys' buckets are read concurrently and written out in the keys' order.
        let usage = try_join_all(
            keys.items
                .iter()
                .map(|k| async { tokio::try_join!(self.buckets(&k.id, period), self.labelled(&k.id, period)) }),
        )
        .await?;
        let mut out = Writer::new(format);
        for (key, (buckets, labelled)) in keys.items.iter().zip(usage) {
            // Per period and label ("" for the key's own calls): a narrowed token's calls are
            // in the key's buckets too, so they move from the key's row to their label's.
            let mut sums: BTreeMap<(DateTime<Utc>, &str), Totals> = BTreeMap::new();
            for b in buckets.iter().filter(|b| b.requests != 0 || b.cost != 0 || !b.refused.is_empty()) {
                sums.entry((granularity.start_of(b.hour), "")).or_default().add(b);
            }
            for l in &labelled {
                let start = granularity.start_of(l.hour);
                let own = sums.entry((start, "")).or_default();
                own.requests -= l.requests;
                own.cost -= l.cost;
                let theirs = sums.entry((start, l.label.as_str())).or_default();
                theirs.requests += l.requests;
                theirs.cost += l.cost;
            }
            sums.retain(|_, t| t.requests != 0 || t.cost != 0 || !t.refused.is_empty());
            for ((start, label), Totals { requests, cost, refused }) in sums {
                out.row(&ExportRow {
                    key_id: key.id.as_str(),
                    user_id: key.user_id.as_str(),
                    user_email: &key.user_email,
                    template_id: key.template_id.as_str(),
                    template_name: &key.template_name,
                    start: start.to_rfc3339_opts(SecondsFormat::Secs, true),
                    requests,
                    cost,
                    refused,
                    amount: self.settings.currency.amount(cost),
                    currency: &self.settings.currency.code,
                    label,
                })?;
            }
        }
        Ok(Export { rows: out.rows, body: out.finish()?, next_cursor: keys.next_cursor })
    }
}

/// Rows as CSV (with a header row) or JSON Lines.
struct Writer {
    csv: Option<csv::Writer<Vec<u8>>>,
    jsonl: Vec<u8>,
    rows: usize,
}

impl Writer {
    fn new(format: ExportFormat) -> Self {
        let csv = (format == ExportFormat::Csv).then(|| {
            let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
            // Writing to memory cannot fail.
            let _ = w.write_record(header());
            w
        });
        Self { csv, jsonl: Vec::new(), rows: 0 }
    }

    fn row(&mut self, row: &ExportRow<'_>) -> Result<()> {
        self.rows += 1;
        match &mut self.csv {
            Some(w) => w.write_record(row.csv_record().iter().map(|c| c.as_bytes())).map_err(Error::internal),
            None => {
                serde_json::to_writer(&mut self.jsonl, row).map_err(Error::internal)?;
                self.jsonl.push(b'\n');
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<Vec<u8>> {
        match self.csv {
            Some(w) => w.into_inner().map_err(|e| Error::internal(e.into_error())),
            None => Ok(self.jsonl),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_made_inert_and_text_is_quoted() {
        assert_eq!(inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert("Weather, daily"), "Weather, daily");
        let mut w = Writer::new(ExportFormat::Csv);
        let row = ExportRow {
            key_id: "k",
            user_id: "u",
            user_email: "a@b",
            template_id: "t",
            template_name: "Weather, \"daily\"",
            start: "2026-12-02T00:00:00Z".into(),
            requests: 3,
            cost: 9,
            refused: Refusals { revoked: 2, quota: 1, ..Refusals::default() },
            amount: "0.09".into(),
            currency: "EUR",
            label: "",
        };
        w.row(&row).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(
            text,
            "key_id,user_id,user_email,template_id,template_name,start,requests,cost,refused,\
             refused_revoked,refused_rerolled,refused_expired,refused_not_yet_valid,refused_permission,refused_quota,\
             refused_rate_limit,refused_key_not_usable,amount,currency,label\n\
             k,u,a@b,t,\"Weather, \"\"daily\"\"\",2026-12-02T00:00:00Z,3,9,3,2,0,0,0,0,1,0,0,0.09,EUR,\n"
        );
        let mut w = Writer::new(ExportFormat::Jsonl);
        w.row(&row).unwrap();
        let line: serde_json::Value = serde_json::from_slice(&w.finish().unwrap()).unwrap();
        assert_eq!(line["requests"], 3);
        assert_eq!((line["amount"].as_str(), line["currency"].as_str()), (Some("0.09"), Some("EUR")));
        assert_eq!((line["refused"]["revoked"].as_i64(), line["refused"]["total"].as_i64()), (Some(2), Some(3)));
        assert!(ExportFormat::parse(Some("xml")).is_err());
    }

    #[test]
    fn every_text_cell_of_the_csv_is_inert_whatever_its_column() {
        for start in ["=1+2", "@SUM(1+1)", "+3+4", "-5+6", "\t=1", "\r=1"] {
            let row = ExportRow {
                key_id: start,
                user_id: start,
                user_email: start,
                template_id: start,
                template_name: start,
                start: start.into(),
                requests: 1,
                cost: 2,
                refused: Refusals::default(),
                amount: "0.02".into(),
                currency: "EUR",
                label: start,
            };
            let mut w = Writer::new(ExportFormat::Csv);
            w.row(&row).unwrap();
            let body = w.finish().unwrap();
            let mut reader = csv::Reader::from_reader(body.as_slice());
            let record = reader.records().next().unwrap().unwrap();
            for (i, cell) in record.iter().take(6).enumerate() {
                assert_eq!(cell, format!("'{start}"), "column {} of {start:?}", header()[i]);
            }
            assert_eq!(record.iter().next_back(), Some(format!("'{start}").as_str()), "the label of {start:?}");
            assert_eq!((&record[6], &record[7]), ("1", "2"), "numbers stay numbers");
            let mut w = Writer::new(ExportFormat::Jsonl);
            w.row(&row).unwrap();
            let line: serde_json::Value = serde_json::from_slice(&w.finish().unwrap()).unwrap();
            assert_eq!(line["user_id"], start, "JSON Lines keeps the value");
        }
    }
}
