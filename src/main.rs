//! The `stsgate` command line: serve | migrate | token | check-config | healthcheck.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use stsgate::config::Config;

/// mimalloc instead of glibc's allocator: a request makes some hundred small allocations,
/// and glibc's `malloc`/`free` were about a sixth of a request's instructions under load
/// (callgrind, docs/decisions.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "stsgate",
    version,
    about = "Credential broker for direct-to-cloud uploads"
)]
struct Cli {
    /// TOML configuration file (env STSGATE_CONFIG); without one, built-in defaults apply.
    #[arg(long, global = true, env = "STSGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print a JWT signed with the configured HS256 secret (or ./stsgate.key).
    Token {
        /// The user (`sub`).
        #[arg(long)]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
        /// Extra claim `k=v`; `v` is parsed as JSON when it parses, else a string.
        #[arg(long = "claim", value_name = "K=V")]
        claims: Vec<String>,
        /// Add `scope: "stsgate:service"` (the backend that lists and consumes objects).
        #[arg(long)]
        service: bool,
    },
    /// Load and validate the configuration; print it with secrets redacted.
    CheckConfig,
    /// Exit 0 when the configured server answers /healthz.
    Healthcheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stsgate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let load = || Config::load(cli.config.as_deref()).map_err(|e| e.to_string());
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            stsgate::init_tracing();
            let mut config = load()?;
            let fallback = stsgate::app::key_file_secret(&config).map_err(|e| e.to_string())?;
            stsgate::app::storage_key_file(&mut config).map_err(|e| e.to_string())?;
            let listen = config.server.listen.clone();
            let state = stsgate::app::build(config, fallback)
                .await
                .map_err(|e| e.to_string())?;
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            tracing::info!(
                listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or(listen),
                providers = ?state.providers,
                "stsgate serving"
            );
            if stsgate::http::demo::enabled(&state) {
                tracing::info!(
                    url = %format!("{}/demo", state.config.server.public_base_url.trim_end_matches('/')),
                    "demo page on"
                );
            }
            stsgate::serve(listener, state, shutdown_signal())
                .await
                .map_err(|e| format!("server error: {e}"))?;
            tracing::info!("stsgate stopped");
            Ok(())
        }
        Command::Migrate => {
            stsgate::init_tracing();
            let config = load()?;
            let store = stsgate::store::connect(&config.database.url)
                .await
                .map_err(|e| e.to_string())?;
            store.migrate().await.map_err(|e| e.to_string())?;
            println!("migrations applied");
            Ok(())
        }
        Command::Token {
            sub,
            ttl,
            claims,
            service,
        } => {
            let config = load()?;
            let secret = if config.auth.hs256_secret.is_set() {
                config.auth.hs256_secret.expose().to_string()
            } else if config.auth.needs_key_file() {
                stsgate::auth::keyfile::load_or_create(&Config::key_file_path())?.0
            } else {
                return Err(
                    "`token` needs an HS256 secret ([auth] hs256_secret or no key at all)".into(),
                );
            };
            let mut extra = serde_json::Map::new();
            for c in claims {
                let (k, v) = c
                    .split_once('=')
                    .ok_or_else(|| format!("--claim {c:?}: expected k=v"))?;
                let value =
                    serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.into()));
                extra.insert(k.to_string(), value);
            }
            if service {
                let scope = match extra.get("scope").and_then(|v| v.as_str()) {
                    Some(s) if !s.split(' ').any(|x| x == stsgate::auth::SERVICE_SCOPE) => {
                        format!("{s} {}", stsgate::auth::SERVICE_SCOPE)
                    }
                    Some(s) => s.to_string(),
                    None => stsgate::auth::SERVICE_SCOPE.to_string(),
                };
                extra.insert("scope".into(), serde_json::Value::String(scope));
            }
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let token = stsgate::auth::jwt::mint_hs256(
                &secret,
                &sub,
                now,
                ttl,
                &config.auth.issuer,
                &config.auth.audience,
                &extra,
            )?;
            println!("{token}");
            Ok(())
        }
        Command::CheckConfig => {
            let config = load()?;
            let enabled = config.validate().map_err(|e| e.to_string())?;
            print!("{}", config.redacted_toml());
            let store_on = stsgate::app::storage_on(&config).map_err(|e| e.to_string())?;
            let listed: Vec<String> = stsgate::providers::CloudType::ALL
                .iter()
                .map(|c| {
                    let on = enabled.contains(c);
                    if *c == stsgate::providers::CloudType::Aws && store_on {
                        format!("{}: embedded store", c.name())
                    } else {
                        format!("{}: {on}", c.name())
                    }
                })
                .collect();
            println!("\n# enabled providers: {}", listed.join(", "));
            if store_on {
                let st = &config.storage;
                println!(
                    "# embedded store: on (cloud type 2), listening on {}, answering as {}, files under {}/{}/, key {}",
                    st.listen,
                    st.public_url,
                    st.dir.trim_end_matches('/'),
                    st.bucket,
                    if st.secret.is_set() { "from storage.secret" } else { "./stsgate-store.key (created on first serve)" }
                );
            }
            Ok(())
        }
        Command::Healthcheck => {
            let config = load()?;
            let mut addr: std::net::SocketAddr = config
                .server
                .listen
                .parse()
                .map_err(|_| "server.listen is not host:port".to_string())?;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let res = reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .map_err(|e| e.to_string())?
                .get(format!("http://{addr}/healthz"))
                .send()
                .await
                .map_err(|e| format!("healthcheck failed: {e}"))?;
            if res.status().is_success() {
                println!("ok");
                Ok(())
            } else {
                Err(format!("healthcheck failed: HTTP {}", res.status()))
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
