//! The admin site's use cases (the `/admin` pages; "site" everywhere in
//! the code, so "admin" keeps meaning the role). The pages also call the
//! API's use cases (`directory`, `roles`, `tenants`, ...) with the
//! principal a [`sessions::SiteAdmin`] carries; what lives here is what
//! only the site needs. Signing-key rotation, shared with `forge keys
//! rotate`, is in `service::keys`.

pub mod dashboard;
pub mod messages;
pub mod sessions;
