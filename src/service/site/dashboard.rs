//! The admin site's dashboard: the counts and sign-in activity of the
//! tenant the pages show.

use std::sync::Arc;

use uuid::Uuid;

use super::sessions::SiteAdmin;
use crate::clock::Clock;
use crate::domain::Timestamp;
use crate::error::AppResult;
use crate::store::{ActivityQuery, SiteCounts, Store};

/// Audit events that count as a successful sign-in on the dashboard.
pub const SIGN_IN_EVENTS: [&str; 3] = ["login", "otp_verified", "admin_login"];
/// Audit events that count as a failed sign-in on the dashboard.
pub const FAILED_SIGN_IN_EVENTS: [&str; 2] = ["login_failed", "otp_failed"];

/// One bar of the sign-in chart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivityPoint {
    /// Start of the bucket, Unix seconds (UTC).
    pub start: Timestamp,
    pub successes: u64,
    pub failures: u64,
}

/// Everything the dashboard shows for the tenant the pages show.
#[derive(Clone, Debug, Default)]
pub struct Dashboard {
    pub counts: SiteCounts,
    pub sign_ins_24h: u64,
    pub failures_24h: u64,
    /// 24 hourly buckets, the last one the current (partial) hour.
    pub hourly: Vec<ActivityPoint>,
    /// 30 daily buckets (UTC days), the last one today.
    pub daily: Vec<ActivityPoint>,
}

/// The dashboard's figures, over the store and the clock.
#[derive(Clone)]
pub struct SiteDashboard {
    store: Arc<dyn Store>,
    clock: Clock,
}

impl SiteDashboard {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        Self { store, clock }
    }

    async fn activity(
        &self,
        tenant_id: Uuid,
        since: Timestamp,
        bucket_secs: i64,
        buckets: u32,
    ) -> AppResult<Vec<ActivityPoint>> {
        let rows = self
            .store
            .activity(ActivityQuery {
                tenant_id,
                since,
                bucket_secs,
                buckets,
                successes: SIGN_IN_EVENTS.to_vec(),
                failures: FAILED_SIGN_IN_EVENTS.to_vec(),
            })
            .await?;
        let mut points: Vec<ActivityPoint> = (0..buckets)
            .map(|i| ActivityPoint {
                start: since + i64::from(i) * bucket_secs,
                ..Default::default()
            })
            .collect();
        for row in rows {
            if let Some(p) = points.get_mut(row.bucket as usize) {
                p.successes = row.successes;
                p.failures = row.failures;
            }
        }
        Ok(points)
    }

    /// The dashboard's numbers for the tenant the pages show.
    #[tracing::instrument(skip_all, fields(tenant_id = %admin.own.tenant.id, user_id = %admin.user.id, site_session_id = %admin.session.id))]
    pub async fn dashboard(&self, admin: &SiteAdmin) -> AppResult<Dashboard> {
        const HOUR: i64 = 3_600;
        const DAY: i64 = 86_400;
        let tenant_id = admin.tenant().id;
        let now = self.clock.now();
        let counts = self.store.site_counts(tenant_id, now).await?;
        // (now - 24 h, now], so that what happened this very second counts.
        let last_24h = self.activity(tenant_id, now - DAY + 1, DAY, 1).await?;
        let this_hour = now.div_euclid(HOUR) * HOUR;
        let hourly = self.activity(tenant_id, this_hour - 23 * HOUR, HOUR, 24).await?;
        let today = now.div_euclid(DAY) * DAY;
        let daily = self.activity(tenant_id, today - 29 * DAY, DAY, 30).await?;
        Ok(Dashboard {
            counts,
            sign_ins_24h: last_24h.first().map(|p| p.successes).unwrap_or(0),
            failures_24h: last_24h.first().map(|p| p.failures).unwrap_or(0),
            hourly,
            daily,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AuditEvent;
    use crate::service::{RequestMeta, test_ports};

    #[tokio::test]
    async fn sign_ins_and_failures_land_in_the_current_buckets() {
        let store = test_ports::store();
        let clock = test_ports::clock();
        let admin = test_ports::site_admin(&store).await;
        let tenant_id = admin.own.tenant.id;
        let meta = RequestMeta::default();
        for event in [AuditEvent::Login, AuditEvent::Login, AuditEvent::LoginFailed] {
            store
                .record_audit(meta.audit(tenant_id, clock.now(), event, None, None))
                .await
                .unwrap();
        }
        let d = SiteDashboard::new(store, clock).dashboard(&admin).await.unwrap();
        assert_eq!(d.counts.users, 1);
        assert_eq!((d.sign_ins_24h, d.failures_24h), (2, 1));
        assert_eq!((d.hourly.len(), d.daily.len()), (24, 30));
        let now = d.hourly.last().unwrap();
        assert_eq!((now.successes, now.failures), (2, 1));
        assert_eq!(d.daily.last().unwrap().successes, 2);
    }
}
