//! The notification subsystem against real servers on 127.0.0.1: a tiny SMTP
//! server, an HTTP webhook receiver and a fake Twilio, each started inside the
//! test. Checks delivery per channel, retries, permanent failures, restarts,
//! stale leases, graceful shutdown and that codes are erased from the outbox.
//! Retry delays are milliseconds (`WorkerSettings::new`); the only timing in
//! these tests is a generous deadline against a hang.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine;
use forge::clock::Clock;
use forge::config::{Config, NotifyChannel, SmtpSecurity};
use forge::notify::{MessageKind, NoticeText, Notifier, Recipient, WorkerSettings};
use forge::secret::Secret;
use forge::store::sqlite::SqliteStore;
use forge::store::{DEFAULT_TENANT_ID, OutboxMessage, OutboxStatus, OutboxStore};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const CODE: &str = "482913";
const TTL: Duration = Duration::from_secs(300);
const WEBHOOK_SECRET: &str = "webhook-secret-for-tests";

// ---------------------------------------------------------------- harness

fn store() -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open("sqlite::memory:", 4).unwrap())
}

fn fast() -> WorkerSettings {
    WorkerSettings::new(
        Duration::from_millis(5),
        Duration::from_millis(40),
        Duration::from_millis(20),
    )
}

fn config(channel: NotifyChannel) -> Config {
    let mut c = Config::for_tests();
    c.notify.channel = channel;
    c.notify.max_attempts = 3;
    c.server.public_url = "https://auth.example.test".into();
    c
}

fn webhook_config(addr: SocketAddr) -> Config {
    let mut c = config(NotifyChannel::Webhook);
    c.notify.webhook.url = format!("http://{addr}/hook");
    c.notify.webhook.secret = Some(Secret::new(WEBHOOK_SECRET));
    c
}

struct Worker {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Worker {
    fn start(notifier: &Notifier) -> Self {
        let (stop, rx) = watch::channel(false);
        Self {
            handle: notifier.spawn_worker(rx),
            stop,
        }
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("worker did not stop")
            .unwrap();
    }
}

async fn send(notifier: &Notifier, to: Recipient, kind: MessageKind) {
    notifier
        .send(DEFAULT_TENANT_ID, to, kind, &Secret::new(CODE), TTL)
        .await
        .unwrap();
}

fn phone() -> Recipient {
    Recipient::Phone("+14155550100".into())
}

fn email() -> Recipient {
    Recipient::Email("alice@example.com".into())
}

async fn messages(store: &SqliteStore) -> Vec<OutboxMessage> {
    store.list(DEFAULT_TENANT_ID, None, 100, None).await.unwrap()
}

async fn only_message(store: &SqliteStore) -> OutboxMessage {
    let mut all = messages(store).await;
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

/// Polls `check` until it holds; panics after a generous deadline (a hang, not a timing assertion).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn until_status(store: &SqliteStore, status: OutboxStatus) -> OutboxMessage {
    eventually(&format!("a message {status:?}"), || async {
        messages(store).await.first().is_some_and(|m| m.status == status)
    })
    .await;
    only_message(store).await
}

fn assert_erased(m: &OutboxMessage) {
    assert!(
        m.body.is_none() && m.html.is_none() && m.code.is_none(),
        "secret left in {m:?}"
    );
    if let Some(e) = &m.last_error {
        assert!(!e.contains(CODE), "code in last_error: {e}");
    }
}

// ---------------------------------------------------------------- HTTP receiver

#[derive(Clone, Debug)]
struct Request {
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

struct ReceiverState {
    hits: AtomicUsize,
    requests: Mutex<Vec<Request>>,
    /// Status for the n-th request (0-based).
    answer: Box<dyn Fn(usize) -> u16 + Send + Sync>,
    delay: Duration,
}

#[derive(Clone)]
struct Receiver(Arc<ReceiverState>);

impl Receiver {
    fn new(answer: impl Fn(usize) -> u16 + Send + Sync + 'static, delay: Duration) -> Self {
        Self(Arc::new(ReceiverState {
            hits: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            answer: Box::new(answer),
            delay,
        }))
    }

    fn hits(&self) -> usize {
        self.0.hits.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<Request> {
        self.0.requests.lock().unwrap().clone()
    }

    /// Serves on an already bound socket.
    fn serve(&self, listener: TcpListener) {
        let state = self.0.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let n = state.hits.fetch_add(1, Ordering::SeqCst);
                state.requests.lock().unwrap().push(Request { uri, headers, body });
                tokio::time::sleep(state.delay).await;
                let status = StatusCode::from_u16((state.answer)(n)).unwrap();
                (status, r#"{"code": 21211, "message": "echo 482913"}"#)
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }

    async fn start(self) -> (Self, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        self.serve(listener);
        (self, addr)
    }
}

fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

// ---------------------------------------------------------------- SMTP server

#[derive(Clone, Debug, Default)]
pub(crate) struct Mail {
    from: String,
    rcpt: Vec<String>,
    data: String,
}

/// Just enough SMTP for lettre without TLS: greeting, EHLO, MAIL, RCPT,
/// DATA, QUIT; `rcpt_reply` lets a test refuse recipients.
pub(crate) async fn smtp_server(rcpt_reply: &'static str) -> (SocketAddr, Arc<Mutex<Vec<Mail>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let seen = mails.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 localhost test ESMTP\r\n").await.unwrap();
                let mut mail = Mail::default();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &str = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        "250 localhost\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        mail.from = line[10..].trim().to_owned();
                        "250 OK\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        mail.rcpt.push(line[8..].trim().to_owned());
                        rcpt_reply
                    } else if upper == "DATA" {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        mail.data = data;
                        seen.lock().unwrap().push(std::mem::take(&mut mail));
                        "250 queued\r\n"
                    } else if upper == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        "250 OK\r\n"
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, mails)
}

fn smtp_config(addr: SocketAddr) -> Config {
    let mut c = config(NotifyChannel::Smtp);
    c.notify.smtp.host = addr.ip().to_string();
    c.notify.smtp.port = addr.port();
    c.notify.smtp.security = SmtpSecurity::None;
    c.notify.smtp.from = "forge <noreply@example.test>".into();
    c
}

// ---------------------------------------------------------------- channels

#[tokio::test]
async fn smtp_delivers_the_rendered_email_and_erases_it() {
    let (addr, mails) = smtp_server("250 OK\r\n").await;
    let store = store();
    let notifier = Notifier::new(&smtp_config(addr), store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    send(&notifier, email(), MessageKind::PasswordReset).await;

    let m = until_status(&store, OutboxStatus::Delivered).await;
    worker.stop().await;
    assert_erased(&m);
    assert_eq!(m.attempts, 1);
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "<noreply@example.test>");
    assert_eq!(mail.rcpt, ["<alice@example.com>"]);
    assert!(mail.data.contains("To: alice@example.com"), "{}", mail.data);
    assert!(
        mail.data.contains("Subject: Reset your forge password"),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains("Content-Type: multipart/alternative"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("Content-Type: text/plain"), "{}", mail.data);
    assert!(mail.data.contains("Content-Type: text/html"), "{}", mail.data);
    assert_eq!(mail.data.matches(CODE).count(), 2, "in both parts: {}", mail.data);
    assert!(mail.data.contains("5 minutes"), "{}", mail.data);
    assert!(mail.data.contains("https://auth.example.test"), "{}", mail.data);
}

#[tokio::test]
async fn smtp_5xx_is_permanent_and_sms_falls_back_to_the_log() {
    let (addr, mails) = smtp_server("550 no such user\r\n").await;
    let store = store();
    let notifier = Notifier::new(&smtp_config(addr), store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    send(&notifier, email(), MessageKind::Otp).await;
    let m = until_status(&store, OutboxStatus::Failed).await;
    assert_eq!(m.attempts, 1, "a 5xx is not retried");
    assert!(m.last_error.as_deref().unwrap().contains("550"), "{m:?}");
    assert!(m.body.is_some(), "a failed message keeps its body until it expires");

    // SMS on an SMTP deployment goes to the log channel, not to the mail server.
    send(&notifier, phone(), MessageKind::Otp).await;
    eventually("the SMS delivered", || async {
        messages(&store)
            .await
            .iter()
            .any(|m| m.recipient == "+14155550100" && m.status == OutboxStatus::Delivered)
    })
    .await;
    worker.stop().await;
    assert!(mails.lock().unwrap().is_empty());
}

#[tokio::test]
async fn webhook_posts_signed_json() {
    let (receiver, addr) = Receiver::new(|_| 204, Duration::ZERO).start().await;
    let store = store();
    let notifier = Notifier::new(&webhook_config(addr), store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    send(&notifier, phone(), MessageKind::Otp).await;
    let m = until_status(&store, OutboxStatus::Delivered).await;
    worker.stop().await;
    assert_erased(&m);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.uri.path(), "/hook");
    assert_eq!(r.headers["content-type"], "application/json");
    let ts = r.headers["x-forge-timestamp"].to_str().unwrap();
    let ts_secs: i64 = ts.parse().unwrap();
    assert!((Clock::system().now() - ts_secs).abs() < 60, "stale timestamp {ts}");
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    let want = format!("sha256={}", hmac_hex(WEBHOOK_SECRET.as_bytes(), &signed));
    assert_eq!(r.headers["x-forge-signature"], want.as_str());

    let json: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["id"], m.id.to_string());
    assert_eq!(json["kind"], "otp");
    assert_eq!(json["channel"], "sms");
    assert_eq!(json["to"], "+14155550100");
    assert_eq!(json["subject"], "Your forge sign-in code");
    assert_eq!(
        json["body"],
        format!("Your forge code is {CODE}. It expires in 5 minutes.")
    );
    assert_eq!(json["code"], CODE);
}

fn twilio_config(addr: SocketAddr) -> Config {
    let mut c = config(NotifyChannel::Twilio);
    c.notify.twilio.account_sid = "AC0123456789".into();
    c.notify.twilio.auth_token = Some(Secret::new("twilio-token"));
    c.notify.twilio.from = "+15005550006".into();
    c.notify.twilio.base_url = format!("http://{addr}");
    c
}

#[tokio::test]
async fn twilio_sends_sms_with_basic_auth_and_email_falls_back_to_the_log() {
    let (receiver, addr) = Receiver::new(|_| 201, Duration::ZERO).start().await;
    let store = store();
    let notifier = Notifier::new(&twilio_config(addr), store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    send(&notifier, phone(), MessageKind::Otp).await;
    send(&notifier, email(), MessageKind::EmailVerification).await;
    eventually("both delivered", || async {
        let all = messages(&store).await;
        all.len() == 2 && all.iter().all(|m| m.status == OutboxStatus::Delivered)
    })
    .await;
    worker.stop().await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "email must not go to Twilio");
    let r = &requests[0];
    assert_eq!(r.uri.path(), "/2010-04-01/Accounts/AC0123456789/Messages.json");
    let basic = base64::engine::general_purpose::STANDARD.encode("AC0123456789:twilio-token");
    assert_eq!(r.headers["authorization"], format!("Basic {basic}").as_str());
    assert_eq!(r.headers["content-type"], "application/x-www-form-urlencoded");
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&r.body).unwrap();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(field("To"), Some("+14155550100"));
    assert_eq!(field("From"), Some("+15005550006"));
    assert_eq!(
        field("Body"),
        Some(format!("Your forge code is {CODE}. It expires in 5 minutes.").as_str())
    );
}

#[tokio::test]
async fn twilio_refusal_keeps_its_error_code_but_not_its_text() {
    let (receiver, addr) = Receiver::new(|_| 400, Duration::ZERO).start().await;
    let store = store();
    let notifier = Notifier::new(&twilio_config(addr), store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    send(&notifier, phone(), MessageKind::Otp).await;
    let m = until_status(&store, OutboxStatus::Failed).await;
    worker.stop().await;
    assert_eq!(receiver.hits(), 1);
    assert_eq!(
        m.last_error.as_deref(),
        Some("twilio answered 400 (Twilio error 21211)")
    );
    assert!(m.body.is_some(), "a failed message keeps its body until it expires");
}

#[tokio::test]
async fn memory_channel_captures_inline_without_queueing() {
    let store = store();
    let notifier = Notifier::new(
        &config(NotifyChannel::Memory),
        store.clone(),
        Clock::manual(1_700_000_000),
    )
    .unwrap();
    send(&notifier, email(), MessageKind::Otp).await;
    notifier
        .send(
            DEFAULT_TENANT_ID,
            email(),
            MessageKind::EmailVerification,
            &Secret::new("111222"),
            TTL,
        )
        .await
        .unwrap();
    let entries = notifier.memory().unwrap().messages_to("alice@example.com");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].code, "111222", "newest first");
    assert_eq!(entries[0].kind, MessageKind::EmailVerification);
    assert_eq!(entries[1].code, CODE);
    assert!(entries[1].body.contains(CODE));
    assert_eq!(entries[1].at, 1_700_000_000);
    assert!(notifier.memory().unwrap().messages_to("bob@example.com").is_empty());
    assert!(messages(&store).await.is_empty(), "memory messages are not queued");
    assert_eq!(notifier.pending_count().await.unwrap(), 0);
}

#[tokio::test]
async fn log_channel_delivers() {
    let store = store();
    let notifier = Notifier::new(&config(NotifyChannel::Log), store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    assert!(notifier.memory().is_none());
    let worker = Worker::start(&notifier);
    send(&notifier, phone(), MessageKind::Otp).await;
    let m = until_status(&store, OutboxStatus::Delivered).await;
    worker.stop().await;
    assert_erased(&m);
}

// ---------------------------------------------------------------- retries and failures

#[tokio::test]
async fn transient_errors_are_retried_until_delivered_once() {
    let (receiver, addr) = Receiver::new(|n| if n < 2 { 503 } else { 200 }, Duration::ZERO)
        .start()
        .await;
    let store = store();
    let notifier = Notifier::new(&webhook_config(addr), store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    send(&notifier, phone(), MessageKind::Otp).await;
    let m = until_status(&store, OutboxStatus::Delivered).await;
    worker.stop().await;
    assert_eq!(m.attempts, 3);
    assert_eq!(receiver.hits(), 3, "delivered exactly once after two refusals");
    assert_eq!(m.last_error, None);
    assert_erased(&m);
}

#[tokio::test]
async fn a_receiver_that_is_down_at_first_still_gets_the_message() {
    // The port is bound but not listening: connections are refused until it listens.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let mut config = webhook_config(addr);
    config.notify.max_attempts = 1000;
    let store = store();
    let notifier = Notifier::new(&config, store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    send(&notifier, phone(), MessageKind::Otp).await;

    eventually("a refused attempt", || async {
        messages(&store).await[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("connection failed"))
    })
    .await;
    let receiver = Receiver::new(|_| 200, Duration::ZERO);
    receiver.serve(socket.listen(64).unwrap());

    let m = until_status(&store, OutboxStatus::Delivered).await;
    worker.stop().await;
    assert!(m.attempts >= 2, "{m:?}");
    assert_eq!(receiver.hits(), 1);
    assert_erased(&m);
}

#[tokio::test]
async fn a_receiver_that_always_fails_exhausts_max_attempts() {
    let (receiver, addr) = Receiver::new(|_| 500, Duration::ZERO).start().await;
    let store = store();
    let notifier = Notifier::new(&webhook_config(addr), store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    send(&notifier, phone(), MessageKind::Otp).await;
    let m = until_status(&store, OutboxStatus::Failed).await;
    worker.stop().await;
    assert_eq!(m.attempts, 3);
    assert_eq!(receiver.hits(), 3);
    assert_eq!(
        m.last_error.as_deref(),
        Some("webhook answered 500 (gave up after 3 attempts)")
    );
    assert!(m.body.is_some(), "a failed message keeps its body until it expires");
    assert_eq!(notifier.pending_count().await.unwrap(), 0);
    assert!(
        store
            .resend(DEFAULT_TENANT_ID, m.id, Clock::system().now())
            .await
            .unwrap(),
        "an operator can resend it while the code is valid"
    );
}

#[tokio::test]
async fn a_4xx_fails_at_once() {
    let (receiver, addr) = Receiver::new(|_| 400, Duration::ZERO).start().await;
    let store = store();
    let notifier = Notifier::new(&webhook_config(addr), store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    send(&notifier, email(), MessageKind::EmailVerification).await;
    let m = until_status(&store, OutboxStatus::Failed).await;
    worker.stop().await;
    assert_eq!(m.attempts, 1);
    assert_eq!(receiver.hits(), 1);
    assert_eq!(m.last_error.as_deref(), Some("webhook answered 400"));
    assert!(m.body.is_some(), "a failed message keeps its body until it expires");
}

// ---------------------------------------------------------------- durability

#[tokio::test]
async fn a_message_queued_with_no_worker_is_delivered_when_one_starts() {
    let (receiver, addr) = Receiver::new(|_| 200, Duration::ZERO).start().await;
    let store = store();
    let config = webhook_config(addr);
    // The "first process" queues and never runs a worker.
    let first = Notifier::new(&config, store.clone(), Clock::system()).unwrap();
    send(&first, phone(), MessageKind::Otp).await;
    let m = only_message(&store).await;
    assert_eq!(m.status, OutboxStatus::Pending);
    assert_eq!(m.code.as_ref().map(Secret::expose), Some(CODE));
    assert_eq!(first.pending_count().await.unwrap(), 1);
    drop(first);

    // The "restarted process" picks it up.
    let second = Notifier::new(&config, store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&second);
    let m = until_status(&store, OutboxStatus::Delivered).await;
    worker.stop().await;
    assert_eq!(receiver.hits(), 1);
    assert_erased(&m);
}

#[tokio::test]
async fn a_message_left_sending_by_a_crashed_worker_is_claimed_again_after_its_lease() {
    let (receiver, addr) = Receiver::new(|_| 200, Duration::ZERO).start().await;
    let store = store();
    let clock = Clock::manual(1_700_000_000);
    let notifier = Notifier::new(&webhook_config(addr), store.clone(), clock.clone())
        .unwrap()
        .with_worker_settings(fast());
    send(&notifier, phone(), MessageKind::Otp).await;
    // A worker claims it with a 60 s lease, then "crashes".
    let claimed = store.claim_due(clock.now(), 16, 60).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].status, OutboxStatus::Sending);
    assert_eq!(claimed[0].locked_until, Some(clock.now() + 60));
    assert!(
        store.claim_due(clock.now(), 16, 60).await.unwrap().is_empty(),
        "leased: not claimable"
    );

    let worker = Worker::start(&notifier);
    clock.advance(30);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.hits(), 0, "lease still held");
    assert_eq!(only_message(&store).await.status, OutboxStatus::Sending);

    clock.advance(31);
    let m = until_status(&store, OutboxStatus::Delivered).await;
    worker.stop().await;
    assert_eq!(m.attempts, 2, "the crashed claim counts as an attempt");
    assert_eq!(receiver.hits(), 1);
    assert_erased(&m);
}

#[tokio::test]
async fn shutdown_waits_for_the_send_in_flight() {
    let (receiver, addr) = Receiver::new(|_| 200, Duration::from_millis(300)).start().await;
    let store = store();
    let notifier = Notifier::new(&webhook_config(addr), store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    send(&notifier, phone(), MessageKind::Otp).await;
    eventually("the send to start", || async { receiver.hits() == 1 }).await;
    worker.stop().await;
    let m = only_message(&store).await;
    assert_eq!(m.status, OutboxStatus::Delivered);
    assert_erased(&m);
}

#[tokio::test]
async fn shutdown_hands_back_claimed_messages_not_yet_started() {
    let (receiver, addr) = Receiver::new(|_| 200, Duration::from_millis(300)).start().await;
    let store = store();
    let mut settings = fast();
    settings.concurrency = 2;
    let notifier = Notifier::new(&webhook_config(addr), store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(settings);
    for _ in 0..5 {
        send(&notifier, phone(), MessageKind::Otp).await;
    }
    let worker = Worker::start(&notifier);
    eventually("two sends in flight", || async { receiver.hits() == 2 }).await;
    worker.stop().await;

    let all = messages(&store).await;
    let delivered: Vec<_> = all.iter().filter(|m| m.status == OutboxStatus::Delivered).collect();
    let pending: Vec<_> = all.iter().filter(|m| m.status == OutboxStatus::Pending).collect();
    assert_eq!(receiver.hits(), 2);
    assert_eq!(delivered.len(), 2, "{all:?}");
    assert_eq!(pending.len(), 3, "{all:?}");
    for m in pending {
        assert_eq!(m.attempts, 0, "handed back untried");
        assert!(m.body.is_some());
    }

    // The next worker delivers the rest.
    let worker = Worker::start(&notifier);
    eventually("all delivered", || async {
        messages(&store)
            .await
            .iter()
            .all(|m| m.status == OutboxStatus::Delivered)
    })
    .await;
    worker.stop().await;
    assert_eq!(receiver.hits(), 5);
}

#[tokio::test]
async fn an_undelivered_code_is_erased_when_it_expires() {
    // Nobody listens: every attempt fails, transiently.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut config = webhook_config(socket.local_addr().unwrap());
    config.notify.max_attempts = 1000;
    let store = store();
    let clock = Clock::manual(1_700_000_000);
    let notifier = Notifier::new(&config, store.clone(), clock.clone())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    send(&notifier, phone(), MessageKind::Otp).await;
    eventually("a failed attempt", || async { messages(&store).await[0].attempts >= 1 }).await;

    clock.advance(TTL.as_secs() as i64);
    let m = until_status(&store, OutboxStatus::Failed).await;
    worker.stop().await;
    assert_eq!(m.last_error.as_deref(), Some("expired"));
    assert_erased(&m);
    drop(socket);
}

// ---------------------------------------------------------------- the store port

#[tokio::test]
async fn list_pages_newest_first_and_filters_by_status() {
    let store = store();
    let clock = Clock::manual(1_700_000_000);
    let notifier = Notifier::new(
        &webhook_config("127.0.0.1:9".parse().unwrap()),
        store.clone(),
        clock.clone(),
    )
    .unwrap();
    for _ in 0..5 {
        send(&notifier, phone(), MessageKind::Otp).await;
    }
    let all = messages(&store).await;
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    let page1 = store.list(DEFAULT_TENANT_ID, None, 2, None).await.unwrap();
    let page2 = store.list(DEFAULT_TENANT_ID, None, 2, Some(page1[1].id)).await.unwrap();
    let page3 = store.list(DEFAULT_TENANT_ID, None, 2, Some(page2[1].id)).await.unwrap();
    let ids: Vec<_> = page1.iter().chain(&page2).chain(&page3).map(|m| m.id).collect();
    assert_eq!(ids, all.iter().map(|m| m.id).collect::<Vec<_>>());

    store.mark_delivered(all[0].id, clock.now()).await.unwrap();
    let delivered = store
        .list(DEFAULT_TENANT_ID, Some(OutboxStatus::Delivered), 10, None)
        .await
        .unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].id, all[0].id);
    assert_eq!(
        store
            .list(DEFAULT_TENANT_ID, Some(OutboxStatus::Pending), 10, None)
            .await
            .unwrap()
            .len(),
        4
    );
    assert!(
        store
            .list(uuid::Uuid::now_v7(), None, 10, None)
            .await
            .unwrap()
            .is_empty(),
        "other tenant"
    );
    assert_eq!(store.pending_count().await.unwrap(), 4);
}

#[tokio::test]
async fn resend_needs_a_failed_message_that_still_has_its_body() {
    let store = store();
    let clock = Clock::manual(1_700_000_000);
    let notifier = Notifier::new(
        &webhook_config("127.0.0.1:9".parse().unwrap()),
        store.clone(),
        clock.clone(),
    )
    .unwrap();
    send(&notifier, phone(), MessageKind::Otp).await;
    let id = only_message(&store).await.id;
    assert!(
        !store.resend(DEFAULT_TENANT_ID, id, clock.now()).await.unwrap(),
        "pending is not failed"
    );

    // A failed message keeps its body until it expires: it can be resent.
    store.claim_due(clock.now(), 1, 60).await.unwrap();
    store.mark_failed(id, "refused", clock.now()).await.unwrap();
    let m = only_message(&store).await;
    assert_eq!(m.status, OutboxStatus::Failed);
    assert!(m.body.is_some());
    assert!(
        !store.resend(uuid::Uuid::now_v7(), id, clock.now()).await.unwrap(),
        "another tenant's"
    );
    assert!(store.resend(DEFAULT_TENANT_ID, id, clock.now()).await.unwrap());
    assert_eq!(only_message(&store).await.status, OutboxStatus::Pending);

    // Once expired, it is erased and nothing is left to resend.
    store.claim_due(clock.now(), 1, 60).await.unwrap();
    store.mark_failed(id, "refused", clock.now()).await.unwrap();
    clock.advance(3600);
    store.expire(clock.now()).await.unwrap();
    assert_erased(&only_message(&store).await);
    assert!(!store.resend(DEFAULT_TENANT_ID, id, clock.now()).await.unwrap());
}

#[tokio::test]
async fn expire_leaves_messages_leased_to_a_live_worker_alone() {
    let store = store();
    let clock = Clock::manual(1_700_000_000);
    let notifier = Notifier::new(
        &webhook_config("127.0.0.1:9".parse().unwrap()),
        store.clone(),
        clock.clone(),
    )
    .unwrap();
    notifier
        .send(
            DEFAULT_TENANT_ID,
            phone(),
            MessageKind::Otp,
            &Secret::new(CODE),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    store.claim_due(clock.now(), 16, 120).await.unwrap();
    clock.advance(90);
    assert_eq!(store.expire(clock.now()).await.unwrap(), 0, "leased until +120");
    assert!(
        store.claim_due(clock.now(), 16, 60).await.unwrap().is_empty(),
        "expired: never claimed"
    );
    clock.advance(31);
    assert_eq!(store.expire(clock.now()).await.unwrap(), 1);
    let m = only_message(&store).await;
    assert_eq!(m.status, OutboxStatus::Failed);
    assert_eq!(m.last_error.as_deref(), Some("expired"));
    assert_erased(&m);
}

/// A security notice reaches a real SMTP listener with its subject, its
/// text (what, when, from where, what to do) and no code.
#[tokio::test]
async fn smtp_delivers_a_security_notice() {
    let (addr, mails) = smtp_server("250 OK\r\n").await;
    let store = store();
    let notifier = Notifier::new(&smtp_config(addr), store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    let text = NoticeText {
        summary: "Your account was signed in to from a device that had not signed in before on \
                  2026-11-27T10:00:00Z from 203.0.113.9 (Firefox)."
            .into(),
        advice: "If this was you, there is nothing to do.".into(),
        when: "2026-11-27T10:00:00Z".into(),
        ip: "203.0.113.9".into(),
        browser: "Firefox".into(),
    };
    notifier
        .notice(DEFAULT_TENANT_ID, email(), MessageKind::NewDevice, &text)
        .await
        .unwrap();
    let m = until_status(&store, OutboxStatus::Delivered).await;
    worker.stop().await;
    assert_erased(&m);
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(
        mail.data.contains("Subject: New sign-in to your forge account"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("203.0.113.9 (Firefox)"), "{}", mail.data);
    assert!(
        mail.data.contains("If this was you, there is nothing to do."),
        "{}",
        mail.data
    );
}

/// An operator's templates reach a real SMTP listener as the text and HTML
/// parts, and an edit applies to the next message, with the same running
/// notifier (no restart): here the HTML file is removed and the text
/// changed, so the next mail is text only.
#[tokio::test]
async fn smtp_sends_operator_templates_and_picks_up_edits() {
    let (addr, mails) = smtp_server("250 OK\r\n").await;
    let store = store();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::templates::write(d, "otp.txt", "Text v1 {{ code }}");
    crate::templates::write(d, "otp.html", "<p>HTML v1 {{ code }} &amp; {{ product }}</p>");
    let mut config = smtp_config(addr);
    config.notify.product_name = "A&B".into();
    config.notify.templates_dir = d.to_str().unwrap().into();
    let notifier = Notifier::new(&config, store.clone(), Clock::system())
        .unwrap()
        .with_worker_settings(fast());
    let worker = Worker::start(&notifier);
    send(&notifier, email(), MessageKind::Otp).await;
    eventually("the first mail", || async { mails.lock().unwrap().len() == 1 }).await;

    crate::templates::write(d, "otp.txt", "Text v2 {{ code }}");
    std::fs::remove_file(d.join("otp.html")).unwrap();
    send(&notifier, email(), MessageKind::Otp).await;
    eventually("the second mail", || async { mails.lock().unwrap().len() == 2 }).await;
    worker.stop().await;

    let mails = mails.lock().unwrap().clone();
    let first = &mails[0].data;
    assert!(first.contains("Content-Type: multipart/alternative"), "{first}");
    assert!(first.contains(&format!("Text v1 {CODE}")), "{first}");
    assert!(
        first.contains(&format!("<p>HTML v1 {CODE} &amp; A&amp;B</p>")),
        "{first}"
    );
    let second = &mails[1].data;
    assert!(second.contains(&format!("Text v2 {CODE}")), "{second}");
    assert!(
        !second.contains("text/html") && !second.contains("multipart"),
        "{second}"
    );
}

/// A `notify.templates_dir` that is not a directory stops the start: a
/// typo there would otherwise send the built-in texts without a word.
#[tokio::test]
async fn a_templates_dir_that_is_not_a_directory_is_refused() {
    let mut config = config(NotifyChannel::Log);
    config.notify.templates_dir = "/nonexistent/forge-templates".into();
    let err = Notifier::new(&config, store(), Clock::system()).err().expect("refused");
    assert!(err.contains("notify.templates_dir"), "{err}");
}
