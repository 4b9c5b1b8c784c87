//! What more than one test module uses and is not a test: the admin site's
//! browser and raw SQL against a test server's database.

pub mod raw_db;
pub mod site_client;
