//! OpenID Connect Back-Channel Logout 1.0 delivery: the signed logout token
//! (the message's body) is POSTed as `application/x-www-form-urlencoded`
//! `logout_token=...` to the client's registered `backchannel_logout_uri`
//! (the message's recipient), section 2.5.
//!
//! Outcome, as for webhooks: 2xx delivered; a 4xx other than 408 and 429 is
//! permanent (the client refused this token, section 2.8 answers 400 for
//! that); anything else, a timeout (10 s) or a connection error is retried
//! by the outbox worker with its backoff. Redirects are not followed. Error
//! texts never carry the URL nor the token.

use async_trait::async_trait;

use super::channel::{Channel, Delivery, SendError};
use super::webhook::{classify, http_client, request_error};

pub struct BackchannelChannel {
    client: reqwest::Client,
}

impl BackchannelChannel {
    pub fn new() -> Self {
        Self { client: http_client() }
    }
}

impl Default for BackchannelChannel {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Channel for BackchannelChannel {
    fn name(&self) -> &'static str {
        "backchannel"
    }

    async fn send(&self, msg: &Delivery) -> Result<(), SendError> {
        let form = [("logout_token", msg.body.expose())];
        let response = self
            .client
            .post(&msg.to)
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .form(&form)
            .send()
            .await
            .map_err(|e| request_error("backchannel", e))?;
        classify("backchannel", response.status())
    }
}
