//! SMS through Twilio's Messages API: a form POST of `To`, `From` and `Body`
//! to `{base_url}/2010-04-01/Accounts/{sid}/Messages.json`, authenticated
//! with HTTP basic auth `account_sid:auth_token`.
//!
//! Twilio sends SMS only; the [`Notifier`](super::Notifier) routes email of a
//! Twilio deployment to SMTP (or the log). Outcome as for the webhook: 2xx
//! delivered, 4xx other than 408/429 permanent (invalid number, unverified
//! sender), anything else transient. The error keeps Twilio's numeric error
//! code (e.g. 21211, invalid `To`), which says what to fix, but not its
//! message text, nor the URL, nor the token.

use async_trait::async_trait;

use super::channel::{Channel, Delivery, SendError};
use super::webhook::{classify, http_client, request_error};
use crate::config::TwilioConfig;
use crate::secret::Secret;

pub struct TwilioChannel {
    client: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: Secret,
    from: String,
}

impl TwilioChannel {
    pub fn new(config: &TwilioConfig) -> Self {
        let base = config.base_url.trim_end_matches('/');
        Self {
            client: http_client(),
            url: format!("{base}/2010-04-01/Accounts/{}/Messages.json", config.account_sid),
            account_sid: config.account_sid.clone(),
            auth_token: config.auth_token.clone().unwrap_or_default(),
            from: config.from.clone(),
        }
    }
}

#[async_trait]
impl Channel for TwilioChannel {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, msg: &Delivery) -> Result<(), SendError> {
        let form = [
            ("To", msg.to.as_str()),
            ("From", self.from.as_str()),
            ("Body", msg.body.expose()),
        ];
        let response = self
            .client
            .post(&self.url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(&form)
            .send()
            .await
            .map_err(|e| request_error("twilio", e))?;
        let status = response.status();
        match classify("twilio", status) {
            Ok(()) => Ok(()),
            Err(mut e) => {
                // Twilio's JSON error carries a numeric `code` documenting the cause.
                let text = response.text().await.unwrap_or_default();
                if let Some(code) = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("code").and_then(serde_json::Value::as_u64))
                {
                    e.reason = format!("{} (Twilio error {code})", e.reason);
                }
                Err(e)
            }
        }
    }
}
