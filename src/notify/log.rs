//! The development channel: prints each message, code included, to the log.
//!
//! This is the one place in forge where a code is deliberately written to a
//! log: on a laptop without a mail server or SMS account, printing the code
//! is this channel's whole job. Production configures a real channel (or
//! `webhook`), and forge warns at start-up when messages fall back to this
//! one. The line reads `OTP 123456 to +14155550100` so a person or a script
//! can find the code at a glance; the full body follows as a field.

use async_trait::async_trait;

use super::channel::{Channel, Delivery, SendError};
use crate::store::MessageKind;

pub struct LogChannel;

#[async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, msg: &Delivery) -> Result<(), SendError> {
        let what = match msg.kind {
            MessageKind::Otp => "OTP",
            MessageKind::EmailVerification => "Email verification code",
            MessageKind::PasswordReset => "Password reset code",
            MessageKind::LogoutToken => "Logout token",
            _ => "Notice",
        };
        tracing::info!(
            target: "forge::notify",
            id = %msg.id,
            channel = msg.channel.as_str(),
            kind = msg.kind.as_str(),
            subject = %msg.subject,
            body = msg.body.expose(),
            "{what} {} to {}",
            msg.code.expose(),
            msg.to
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use uuid::Uuid;

    use super::*;
    use crate::secret::Secret;
    use crate::store::OutboxChannel;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn prints_the_code_and_recipient_on_one_line() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let msg = Delivery {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            kind: MessageKind::Otp,
            channel: OutboxChannel::Sms,
            to: "+14155550100".into(),
            subject: "Your forge sign-in code".into(),
            body: Secret::new("Your forge code is 123456. It expires in 5 minutes."),
            html: None,
            code: Secret::new("123456"),
        };
        tracing::subscriber::with_default(subscriber, || {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(LogChannel.send(&msg)).unwrap();
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("OTP 123456 to +14155550100"), "{out}");
        assert_eq!(out.lines().count(), 1, "{out}");
    }
}
