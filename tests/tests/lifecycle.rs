//! The story of keygate end to end over real HTTP (see `keygate_tests::lifecycle`), on the
//! embedded store with mail to files, and on DynamoDB with mail through SES.

use keygate_tests::{LocalGateway, aws, lifecycle, require_aws};

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_lifecycle_on_sqlite_with_mail_to_files() {
    let gw = LocalGateway::start(&[]);
    lifecycle::walk(&gw).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_lifecycle_on_dynamodb_with_mail_through_ses() {
    let Some(endpoint) = require_aws!() else { return };
    aws::verify_sender(&endpoint).await;
    let gw = LocalGateway::start_on_aws(&endpoint, &aws::unique_table("lifecycle"));
    lifecycle::walk(&gw).await;
}
