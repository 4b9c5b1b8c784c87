//! The `forge` command line. Only argument handling lives here; everything
//! it runs is in the library. Exit codes: 0 success, 2 bad usage or
//! configuration, 1 any other failure.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use forge::config::Config;
use forge::domain::{Email, TenantSlug};
use forge::secret::Secret;

/// mimalloc gives freed memory back to the system. With glibc's allocator,
/// the 19 MiB argon2 buffers freed on different threads stayed resident in
/// several malloc arenas (about 230 MiB after a few dozen sign-ins).
///
/// Built with `no_thp`: mimalloc otherwise asks for transparent huge pages
/// on its arenas, and each 2 MiB page it touches is resident whole (idle
/// anonymous memory 34 MiB with them, 14 MiB without, measured by
/// `scripts/bench`'s idle row on a kernel with THP in `madvise` mode).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hands freed memory back to the system now rather than at mimalloc's
/// next purge, which an idle server never reaches: run on an argon2 thread
/// that has had no job for a second (`forge::crypto::password::on_pool_idle`),
/// so the 19 MiB buffers of a sign-in burst do not stay resident.
fn release_freed_memory() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any
    // thread at any time; `true` also purges what is pending a delay.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[derive(Parser)]
#[command(name = "forge", version, about = "Authentication as infrastructure in one binary")]
struct Cli {
    /// The configuration file (TOML). FORGE_<SECTION>__<KEY> variables override it.
    #[arg(long, short, global = true, env = "FORGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default); applies pending migrations first.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Validate and print the effective configuration, secrets redacted.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Write a consistent copy of the SQLite database while the server runs.
    Backup { file: PathBuf },
    /// Signing keys: list them, or rotate them.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Replace the SQLite database with a backup copy, after checking it.
    /// Refused while a server runs on the database; the replaced database
    /// is kept as <db>.before-restore-<time>.
    Restore { file: PathBuf },
    /// Check the installation: configuration, database, migrations, keys,
    /// backups, outbox, mail and SMS credentials, proxies, clock.
    Doctor {
        /// One JSON object instead of lines.
        #[arg(long)]
        json: bool,
        /// The X-Forwarded-For value to show the client address for.
        #[arg(long, default_value = "203.0.113.7, 10.0.0.2")]
        forwarded_for: String,
    },
    /// Ask a running server whether it is ready (`GET /health/ready`): exit 0
    /// when it is, 1 otherwise. For Docker's HEALTHCHECK (the image has no curl).
    Health {
        /// The server's base URL; default: `server.bind` of the configuration
        /// (an unspecified address such as 0.0.0.0 asked on loopback).
        #[arg(long)]
        url: Option<String>,
    },
    /// Bulk import and export of users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// OAuth clients: register, list, remove, rotate a secret.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Webhook endpoints: register, list, remove, rotate a secret.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Register an endpoint; prints its id and signing secret (shown once).
    Add {
        /// `https` (plain `http` only with `webhooks.allow_private`).
        #[arg(long)]
        url: String,
        /// An event type or pattern (`user.*`, `*`); repeat for several.
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// Tenant slug; `default` unless given.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// List the tenant's endpoints.
    List {
        /// Tenant slug; `default` unless given.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Delete an endpoint and its deliveries.
    Remove {
        id: String,
        /// Tenant slug; `default` unless given.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// A new signing secret (printed once); the old one signs too for 24 h.
    RotateSecret {
        id: String,
        /// Tenant slug; `default` unless given.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Register a client; prints its client_id (and client_secret, shown once).
    Add {
        #[arg(long)]
        name: String,
        /// A redirect URI (repeat for several); matched exactly.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A public client (a native or browser app: no secret, PKCE).
        #[arg(long)]
        public: bool,
        /// Skip the consent page for this client.
        #[arg(long)]
        first_party: bool,
        /// Where RP-initiated logout may send the browser back (repeat for several).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A scope the client may ask for (repeat for several); the default
        /// set (`openid profile email phone offline_access`) unless given.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A grant type (repeat for several): `authorization_code`,
        /// `refresh_token`, `client_credentials`; the first two unless given.
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// Where forge POSTs a signed logout token when a session of this client ends.
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// `EdDSA` (the default) or `RS256`, for clients that cannot verify EdDSA.
        #[arg(long, default_value = "EdDSA")]
        id_token_alg: String,
        /// Tenant slug; `default` unless given.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// List the tenant's clients.
    List {
        /// Tenant slug; `default` unless given.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Delete a client; its sessions are revoked.
    Remove {
        /// A client_id may begin with `-` (it is base64url).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Tenant slug; `default` unless given.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Give a confidential client a new secret (printed once); the old one
    /// stops working and the client's sessions are revoked.
    RotateSecret {
        /// A client_id may begin with `-` (it is base64url).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Tenant slug; `default` unless given.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

/// An operator use case's refusal as the command line reports it: bad
/// input and unknown ids are usage errors (exit 2).
fn use_case_failure(e: forge::error::AppError) -> Failure {
    match e {
        forge::error::AppError::Validation { fields, .. } => Failure::usage(
            fields
                .into_iter()
                .map(|(field, why)| format!("{field}: {why}"))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        forge::error::AppError::NotFound { message, .. } => Failure::usage(message),
        forge::error::AppError::BadRequest { message, .. } => Failure::usage(message),
        other => Failure::from(anyhow::anyhow!("{other}")),
    }
}

/// The tenant a `--tenant` names; a usage error when there is none.
async fn tenant_named(state: &forge::state::AppState, slug: String) -> Result<forge::store::Tenant, Failure> {
    let parsed = TenantSlug::parse(&slug).map_err(|e| Failure::usage(format!("--tenant {e}")))?;
    state
        .store
        .tenant_by_slug(parsed.as_str())
        .await
        .map_err(|e| Failure::from(anyhow::anyhow!("database: {e}")))?
        .ok_or_else(|| Failure::usage(format!("no tenant {slug}")))
}

/// `forge webhooks ...`: the use cases of `service::webhooks`, acting as
/// the operator (the SSRF guard and `webhooks.allow_private` apply).
async fn webhooks(config: Config, command: WebhooksCommand) -> Result<(), Failure> {
    use forge::service::webhooks::Actor;
    let state = forge::app::build_state(config, forge::clock::Clock::system())
        .await
        .map_err(Failure::from)?;
    let meta = forge::service::RequestMeta::default();
    match command {
        WebhooksCommand::Add {
            url,
            events,
            description,
            tenant,
        } => {
            let tenant = tenant_named(&state, tenant).await?;
            let (webhook, secret) = state
                .webhooks
                .create_as(Actor::operator(tenant.id), &url, &events, description, &meta)
                .await
                .map_err(use_case_failure)?;
            println!("id: {}", webhook.id);
            println!("secret: {}", secret.expose());
            eprintln!("forge: the signing secret is shown this once; keep it now");
        }
        WebhooksCommand::List { tenant } => {
            let tenant = tenant_named(&state, tenant).await?;
            let webhooks = state
                .webhooks
                .list_as(Actor::operator(tenant.id))
                .await
                .map_err(use_case_failure)?;
            println!("{:<36}  {:<8}  {:<30}  URL", "ID", "STATE", "EVENTS");
            for w in webhooks {
                let state = if w.enabled { "enabled" } else { "off" };
                println!(
                    "{:<36}  {:<8}  {:<30}  {}",
                    w.id,
                    state,
                    w.events.patterns().join(" "),
                    w.url
                );
            }
        }
        WebhooksCommand::Remove { id, tenant } => {
            let tenant = tenant_named(&state, tenant).await?;
            state
                .webhooks
                .delete_as(Actor::operator(tenant.id), &id, &meta)
                .await
                .map_err(use_case_failure)?;
            println!("forge: webhook {id} removed");
        }
        WebhooksCommand::RotateSecret { id, tenant } => {
            let tenant = tenant_named(&state, tenant).await?;
            let (_, secret) = state
                .webhooks
                .rotate_secret_as(Actor::operator(tenant.id), &id, &meta)
                .await
                .map_err(use_case_failure)?;
            println!("secret: {}", secret.expose());
            eprintln!("forge: the previous secret signs as well for 24 hours");
        }
    }
    Ok(())
}

/// `forge clients ...`: the use cases of `service::clients`, acting as the
/// operator. Revoked sessions are revoked in the database at once (refresh
/// tokens stop); their access tokens are denied at once when the cache is
/// shared (Redis), otherwise when they expire or the server restarts.
async fn clients(config: Config, command: ClientsCommand) -> Result<(), Failure> {
    use forge::domain::clients::{ClientKind, ClientSpec, GrantType, IdTokenAlg};
    use forge::service::clients::Actor;
    let state = forge::app::build_state(config, forge::clock::Clock::system())
        .await
        .map_err(Failure::from)?;
    let meta = forge::service::RequestMeta::default();
    let failure = use_case_failure;
    let tenant_of = |slug: String| tenant_named(&state, slug);
    match command {
        ClientsCommand::Add {
            name,
            redirect_uris,
            public,
            first_party,
            post_logout_redirect_uris,
            scopes,
            grant_types,
            backchannel_logout_uri,
            id_token_alg,
            tenant,
        } => {
            let tenant = tenant_of(tenant).await?;
            let kind = if public {
                ClientKind::Public
            } else {
                ClientKind::Confidential
            };
            let mut spec = ClientSpec::new(name, kind);
            spec.redirect_uris = redirect_uris;
            spec.post_logout_redirect_uris = post_logout_redirect_uris;
            spec.first_party = first_party;
            spec.backchannel_logout_uri = backchannel_logout_uri;
            spec.id_token_alg =
                IdTokenAlg::parse(&id_token_alg).map_err(|e| Failure::usage(format!("--id-token-alg {e}")))?;
            if !scopes.is_empty() {
                spec.scopes = scopes;
            }
            if !grant_types.is_empty() {
                spec.grant_types = grant_types
                    .iter()
                    .map(|g| GrantType::parse(g).map_err(|e| Failure::usage(format!("--grant-type {e}"))))
                    .collect::<Result<_, _>>()?;
            }
            let registered = state
                .clients
                .create_as(Actor::operator(tenant.id), spec, &meta)
                .await
                .map_err(failure)?;
            println!("client_id: {}", registered.client.client_id);
            if let Some(secret) = registered.secret {
                println!("client_secret: {}", secret.expose());
                eprintln!("forge: the client secret is shown this once; keep it now");
            }
        }
        ClientsCommand::List { tenant } => {
            let tenant = tenant_of(tenant).await?;
            let clients = state
                .clients
                .list_as(Actor::operator(tenant.id))
                .await
                .map_err(failure)?;
            println!("{:<24}  {:<12}  {:<30}  REDIRECT URIS", "CLIENT ID", "TYPE", "NAME");
            for c in clients {
                println!(
                    "{:<24}  {:<12}  {:<30}  {}",
                    c.client_id,
                    c.kind.as_str(),
                    c.name,
                    c.redirect_uris.join(" ")
                );
            }
        }
        ClientsCommand::Remove { client_id, tenant } => {
            let tenant = tenant_of(tenant).await?;
            state
                .clients
                .delete_as(Actor::operator(tenant.id), &client_id, &meta)
                .await
                .map_err(failure)?;
            println!("forge: client {client_id} removed; its sessions are revoked");
        }
        ClientsCommand::RotateSecret { client_id, tenant } => {
            let tenant = tenant_of(tenant).await?;
            let secret = state
                .clients
                .rotate_secret_as(Actor::operator(tenant.id), &client_id, &meta)
                .await
                .map_err(failure)?;
            println!("client_secret: {}", secret.expose());
            eprintln!("forge: the old secret no longer works; the client's sessions are revoked");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Import users from a file, with their password hashes (re-hashed to
    /// argon2id at each user's next sign-in). Re-running is safe: existing
    /// identical users are skipped, conflicting ones reported.
    Import {
        file: PathBuf,
        /// jsonl, csv, auth0, supabase, pocketbase (its data.db) or firebase
        /// (auth:export JSON); by extension when not given (.csv, .db, else jsonl).
        #[arg(long)]
        format: Option<String>,
        /// Tenant slug; `default` unless given.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Check every row and report, but write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write the rejected rows (line, user, reason) to this file as JSON Lines.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Firebase's project hash parameters (Authentication, Users, "Password
        /// hash parameters"): base64_signer_key.
        #[arg(long)]
        firebase_signer_key: Option<String>,
        /// base64_salt_separator.
        #[arg(long)]
        firebase_salt_separator: Option<String>,
        /// rounds.
        #[arg(long)]
        firebase_rounds: Option<u32>,
        /// mem_cost.
        #[arg(long)]
        firebase_mem_cost: Option<u8>,
    },
    /// Write the tenant's users to standard output as JSON Lines.
    Export {
        /// Tenant slug; `default` unless given.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Include the password hashes (treat the output as a secret).
        #[arg(long)]
        include_hashes: bool,
    },
}

/// `forge users import|export`: the bulk use cases of `service::import`.
async fn users(config: Config, command: UsersCommand) -> Result<(), Failure> {
    use forge::service::import::{self, FirebaseHashConfig, Format, ImportError, ImportJob};
    let store = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || forge::app::open_store(&config))
            .await
            .map_err(|e| Failure::from(anyhow::anyhow!("cannot open the store: {e}")))??
    };
    let tenant_of = |slug: String| {
        let store = store.clone();
        async move {
            let parsed = TenantSlug::parse(&slug).map_err(|e| Failure::usage(format!("--tenant {e}")))?;
            store
                .tenant_by_slug(parsed.as_str())
                .await
                .map_err(|e| Failure::from(anyhow::anyhow!("database: {e}")))?
                .ok_or_else(|| Failure::usage(format!("no tenant {slug}")))
        }
    };
    let failure = |e: ImportError| match e {
        ImportError::Usage(m) => Failure::usage(m),
        ImportError::Failed(e) => Failure::from(e),
    };
    match command {
        UsersCommand::Import {
            file,
            format,
            tenant,
            dry_run,
            report,
            firebase_signer_key,
            firebase_salt_separator,
            firebase_rounds,
            firebase_mem_cost,
        } => {
            let format = match format {
                Some(f) => Format::parse(&f).ok_or_else(|| {
                    Failure::usage(format!(
                        "--format {f}: expected jsonl, csv, auth0, supabase, pocketbase or firebase"
                    ))
                })?,
                None => Format::guess(&file),
            };
            let firebase = match (
                firebase_signer_key,
                firebase_salt_separator,
                firebase_rounds,
                firebase_mem_cost,
            ) {
                (Some(signer_key), Some(salt_separator), Some(rounds), Some(mem_cost)) => Some(FirebaseHashConfig {
                    signer_key,
                    salt_separator,
                    rounds,
                    mem_cost,
                }),
                (None, None, None, None) => None,
                _ => {
                    return Err(Failure::usage(
                        "give all four of --firebase-signer-key, --firebase-salt-separator, \
                         --firebase-rounds and --firebase-mem-cost",
                    ));
                }
            };
            let tenant = tenant_of(tenant).await?;
            let job = ImportJob {
                file,
                format,
                dry_run,
                report,
                firebase,
            };
            let now = forge::clock::Clock::system().now();
            let summary = import::import(store.clone(), &tenant, job, now)
                .await
                .map_err(failure)?;
            println!(
                "forge: {} rows read: {} created, {} already there, {} rejected{}",
                summary.read,
                summary.created,
                summary.unchanged,
                summary.rejected,
                if dry_run { " (dry run: nothing written)" } else { "" }
            );
        }
        UsersCommand::Export { tenant, include_hashes } => {
            let tenant = tenant_of(tenant).await?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let count = import::export(store.as_ref(), &tenant, include_hashes, &mut out)
                .await
                .map_err(failure)?;
            eprintln!("forge: {count} users exported");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List the signing keys with their state, age and place in the JWKS.
    List,
    /// Rotate: the next key starts signing, the current one retires (it stays
    /// in the JWKS until its tokens expire), a new next key is published.
    /// Running servers pick the change up within a minute.
    Rotate {
        /// Rotate even though the next key was published less than the JWKS
        /// cache lifetime (5 minutes) ago.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an administrator (holding the `admin` role).
    Create {
        #[arg(long)]
        email: String,
        /// Tenant slug; `default` unless given.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate and print the effective configuration.
    Check,
}

/// A failure and the exit code it deserves.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self {
            code: 1,
            message: format!("{e:#}"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("forge: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| Failure::usage(e.to_string()))
}

fn run(cli: Cli) -> Result<(), Failure> {
    forge::crypto::password::on_pool_idle(release_freed_memory);
    // `forge health` answers 0 or 1 only (Docker reserves 2), so
    // it runs before the configuration can fail with a usage error.
    if let Some(Command::Health { url }) = &cli.command {
        return health(cli.config.as_deref(), url.as_deref());
    }
    let config = load_config(cli.config.as_deref())?;
    // Blocking threads beyond the database connections only wait for one;
    // left at tokio's 512, a burst of 64 requests made 327 threads, each
    // with its own stack and allocator heap. The eight spare threads are
    // for the rest of the blocking work (backups, DNS lookups, zxcvbn).
    let blocking_threads = usize::try_from(config.database.pool_size)
        .unwrap_or(usize::MAX)
        .saturating_add(8);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads)
        .build()
        .map_err(|e| Failure::from(anyhow::Error::from(e)))?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            forge::telemetry::init(&config.log);
            runtime.block_on(serve(config, cli.config.as_deref()))?;
        }
        Command::Migrate => {
            forge::telemetry::init(&config.log);
            let applied = forge::app::migrate(&config)?;
            println!("forge: {applied} migration(s) applied");
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            print!("{}", config.redacted_toml());
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    tenant,
                    password_stdin,
                },
        } => {
            forge::telemetry::init(&config.log);
            let email = Email::parse(&email).map_err(|e| Failure::usage(format!("--email {e}")))?;
            let tenant = TenantSlug::parse(&tenant).map_err(|e| Failure::usage(format!("--tenant {e}")))?;
            let password = read_password(password_stdin)?;
            runtime.block_on(async {
                let state = forge::app::build_state(config, forge::clock::Clock::system()).await?;
                state
                    .accounts
                    .create_admin(&tenant, email.clone(), password)
                    .await
                    .map_err(|e| match e {
                        forge::error::AppError::Validation { fields, .. } => Failure::usage(format!(
                            "password not accepted: {}",
                            fields.into_values().collect::<Vec<_>>().join(", ")
                        )),
                        other => Failure::from(anyhow::anyhow!("{other}")),
                    })?;
                println!("forge: administrator {email} created in tenant {tenant}");
                Ok::<(), Failure>(())
            })?;
        }
        Command::Keys { command } => runtime.block_on(keys(config, command))?,
        Command::Health { .. } => {} // answered above, before the configuration loads
        Command::Users { command } => runtime.block_on(users(config, command))?,
        Command::Clients { command } => runtime.block_on(clients(config, command))?,
        Command::Webhooks { command } => runtime.block_on(webhooks(config, command))?,
        Command::Backup { file } => {
            let Some(database) = forge::store::backup::database_file(&config.database.url) else {
                return Err(Failure::usage(
                    "forge backup copies a SQLite database file; back up PostgreSQL with pg_dump",
                ));
            };
            forge::store::backup::copy_to(&database, &file)?;
            println!("forge: backup written to {} (integrity checked)", file.display());
        }
        Command::Restore { file } => {
            if forge::store::backup::database_file(&config.database.url).is_none() {
                return Err(Failure::usage(
                    "forge restore replaces a SQLite database file; restore PostgreSQL with its own tools",
                ));
            }
            let restored = forge::app::restore(&config, &file)?;
            if let Some(previous) = &restored.previous {
                println!("forge: the previous database is kept as {}", previous.display());
            }
            println!(
                "forge: restored {} (schema version {}); start the server to use it",
                file.display(),
                restored.version
            );
        }
        Command::Doctor { json, forwarded_for } => {
            let report = runtime.block_on(forge::doctor::run(&config, cli.config.as_deref(), &forwarded_for));
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if report.failed() {
                return Err(Failure {
                    code: 1,
                    message: "doctor found a failure".into(),
                });
            }
        }
    }
    Ok(())
}

/// `forge keys list|rotate`: the key use cases the admin site uses, on the store.
async fn keys(config: Config, command: KeysCommand) -> Result<(), Failure> {
    use forge::service::keys;
    let store = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || forge::app::open_store(&config))
            .await
            .map_err(|e| Failure::from(anyhow::anyhow!("cannot open the store: {e}")))??
    };
    let now = forge::clock::Clock::system().now();
    let app_error = |e: forge::error::AppError| Failure::from(anyhow::anyhow!("{e}"));
    if config.jwt.algorithm == forge::config::JwtAlgorithm::HS256 {
        eprintln!("forge: jwt.algorithm is HS256: tokens are signed with jwt.secret, not with these keys");
    }
    if let KeysCommand::Rotate { force } = command {
        let meta = forge::service::RequestMeta::default();
        keys::rotate_keys(store.as_ref(), &config, now, force, None, "cli", &meta)
            .await
            .map_err(app_error)?;
        println!("forge: signing keys rotated; running servers switch within a minute");
    }
    let keys = keys::list_keys(store.as_ref(), &config, now).await.map_err(app_error)?;
    if keys.is_empty() {
        println!("forge: no signing keys yet; they are created when the server first starts");
        return Ok(());
    }
    let time = |t: Option<i64>| t.map(forge::domain::rfc3339).unwrap_or_else(|| "-".into());
    println!(
        "{:<44}  {:<8}  {:<6}  {:<20}  {:>7}  {:<20}  {:<20}  JWKS",
        "KID", "STATE", "ALG", "CREATED", "AGE", "SIGNING SINCE", "RETIRED"
    );
    for k in keys {
        let jwks = match (k.published, k.unpublished_at) {
            (true, Some(until)) => format!("until {}", forge::domain::rfc3339(until)),
            (true, None) => "yes".into(),
            (false, _) => "no".into(),
        };
        println!(
            "{:<44}  {:<8}  {:<6}  {:<20}  {:>7}  {:<20}  {:<20}  {jwks}",
            k.kid,
            k.state.as_str(),
            k.algorithm,
            forge::domain::rfc3339(k.created_at),
            forge::http::site::views::duration(now - k.created_at),
            time(k.activated_at),
            time(k.retired_at),
        );
    }
    Ok(())
}

fn read_password(from_stdin: bool) -> Result<Secret, Failure> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::from(anyhow::Error::from(e)))?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            return Err(Failure::usage("no password on standard input"));
        }
        return Ok(Secret::new(password));
    }
    let password = rpassword::prompt_password("Password: ").map_err(|e| Failure::from(anyhow::Error::from(e)))?;
    let again = rpassword::prompt_password("Again: ").map_err(|e| Failure::from(anyhow::Error::from(e)))?;
    if password != again {
        return Err(Failure::usage("the passwords differ"));
    }
    Ok(Secret::new(password))
}

async fn serve(config: Config, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    if config.dev.outbox {
        tracing::warn!(
            "dev.outbox is ON: GET /v1/dev/outbox exposes every message forge sends. Never enable this in production."
        );
    }
    let app = forge::Application::build(config).await?;
    app.state()
        .accounts
        .bootstrap_admin(
            std::env::var("FORGE_ADMIN_EMAIL").ok(),
            std::env::var("FORGE_ADMIN_PASSWORD").ok(),
        )
        .await?;
    forge::telemetry::log_startup(&app.state().config, file, app.local_addr());
    println!("forge listening on http://{}", app.local_addr());
    app.run_until_stopped(forge::app::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// `forge health [--url URL]`: 0 when `GET URL/health/ready` answers 200
/// within five seconds, 1 for anything else (a configuration that does not
/// load included: Docker reads exit code 2 as reserved).
fn health(config: Option<&std::path::Path>, url: Option<&str>) -> Result<(), Failure> {
    let unhealthy = |message: String| Failure { code: 1, message };
    let base = match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let config = Config::load(config).map_err(|e| unhealthy(e.to_string()))?;
            local_url(config.server.bind)
                .ok_or_else(|| unhealthy("server.bind has port 0: give the server's address with --url".to_owned()))?
        }
    };
    let url = format!("{base}/health/ready");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| unhealthy(e.to_string()))?;
    runtime.block_on(async {
        // No proxy: the server is this host's (or the one --url names), and
        // an HTTP_PROXY of the environment must not answer for it.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| unhealthy(format!("{url}: {e}")))?;
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| unhealthy(format!("{url}: {e}")))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let body = body.trim();
        if status.is_success() {
            println!("forge: {url}: {status} {body}");
            Ok(())
        } else {
            Err(unhealthy(format!("{url}: {status} {body}")))
        }
    })
}

/// Where this host reaches a server bound to `bind`: an unspecified address
/// (`0.0.0.0`, `[::]`) on loopback; `None` for port 0 (no fixed port).
fn local_url(bind: std::net::SocketAddr) -> Option<String> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    if bind.port() == 0 {
        return None;
    }
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Some(format!("http://{}", SocketAddr::new(ip, bind.port())))
}

#[cfg(test)]
mod tests {
    use super::local_url;

    #[test]
    fn health_asks_an_unspecified_bind_on_loopback() {
        assert_eq!(
            local_url("0.0.0.0:8080".parse().unwrap()).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            local_url("[::]:9000".parse().unwrap()).as_deref(),
            Some("http://[::1]:9000")
        );
        assert_eq!(
            local_url("10.1.2.3:8080".parse().unwrap()).as_deref(),
            Some("http://10.1.2.3:8080")
        );
        assert_eq!(local_url("127.0.0.1:0".parse().unwrap()), None);
    }
}
