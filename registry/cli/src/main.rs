//! `outpost-registry`: the central team's registry server and its admin
//! commands. `serve` runs a node's install checks (`outpost::release_check`)
//! on every pushed release before storing it, which is why this binary is a
//! package of its own: the registry library cannot depend on the node.

mod admin_link;
mod nodes;
mod rollouts;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use outpost::release_check::ReleaseChecker;
use outpost_registry::admin;
use outpost_registry::keys::{self, KeyPair};
use outpost_registry::repository::{self, Lifetimes, OnlineKeys};
use outpost_registry::server::{Registry, ServeConfig, control};
use outpost_registry::store::RegistryStore;
use outpost_registry::tls::ServerTls;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "outpost-registry",
    version,
    about = "The Outpost plugin registry: signed plugins for a fleet of nodes",
    long_about = "The Outpost plugin registry: vendors push plugins to it and sign their releases; \
nodes verify and install them.\n\n\
Getting started (the central team):\n  \
outpost-registry init --data-dir /srv/outpost-registry\n  \
outpost-registry namespace add acme --key acme.pub.json\n  \
outpost-registry token create acme\n  \
outpost-registry serve --listen 0.0.0.0:7272 --tls-cert cert.pem --tls-key key.pem\n\n\
Then give nodes <DATA_DIR>/root.json (`outpost trust init`), vendors their token.\n\
Plain HTTP is served only on a loopback address.\n\
Namespace, token and root commands need the server stopped (the database has one\nwriter); node commands reach a running registry through its admin socket."
)]
struct Cli {
    /// Where the registry keeps its database, blobs and online keys
    #[arg(
        long,
        global = true,
        env = "OUTPOST_REGISTRY_DIR",
        default_value = "outpost-registry"
    )]
    data_dir: PathBuf,
    /// What to log, as a tracing filter
    #[arg(long, global = true, env = "OUTPOST_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a registry: root keys, online keys, and version 1 of the metadata
    ///
    /// Writes the root keys to --root-keys (default <DATA_DIR>/root-keys):
    /// move that folder somewhere offline once this is done; it is needed
    /// again only to rotate the root. Writes <DATA_DIR>/root.json, the file
    /// every node is provisioned with.
    Init {
        /// Where to write the root keys
        #[arg(long)]
        root_keys: Option<PathBuf>,
        /// How many root keys to make
        #[arg(long, default_value_t = 1)]
        root_key_count: u64,
        /// How many of them must sign a new root
        #[arg(long, default_value_t = 1)]
        root_threshold: u64,
    },
    /// Serve the OCI API, the TUF metadata and publishing
    ///
    /// Every pushed plugin release goes through a node's install checks
    /// (plugin.toml, the component, its imports and exports, the version its
    /// `info` reports) before it is stored; one no node would install is
    /// refused with the reason.
    Serve {
        /// Listen here
        #[arg(long, default_value = "127.0.0.1:7272")]
        listen: SocketAddr,
        /// The largest blob accepted, in bytes
        #[arg(long, default_value_t = 64 << 20)]
        max_blob_bytes: u64,
        /// How long a timestamp is valid (re-signed at half of it): 24h, 30m, 10s
        #[arg(long, default_value = "24h")]
        timestamp_lifetime: jiff::SignedDuration,
        /// How long a snapshot is valid
        #[arg(long, default_value = "720h")]
        snapshot_lifetime: jiff::SignedDuration,
        /// Do not re-sign the timestamp (for testing how nodes treat stale metadata)
        #[arg(long, hide = true)]
        no_refresh: bool,
        /// Unfinished uploads one vendor namespace may hold at once
        #[arg(long, default_value_t = 32)]
        max_open_uploads: usize,
        /// Remove an upload that has received nothing for this long: 24h, 30m
        #[arg(long, default_value = "24h")]
        upload_idle_limit: jiff::SignedDuration,
        /// Serve HTTPS with this certificate (PEM: the server's, then its intermediates)
        ///
        /// Needed to listen on anything but a loopback address: vendor and
        /// enrolment tokens must not cross the network in clear.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM)
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Create and list vendor namespaces
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Create tokens that let a vendor push and publish under its namespace
    #[command(subcommand)]
    Token(TokenCommand),
    /// Enrol, label, list and retire the fleet's nodes (works while the registry serves)
    #[command(subcommand)]
    Node(nodes::NodeCommand),
    /// Roll a release out to selected nodes in waves, and watch or steer it (works while the registry serves)
    #[command(subcommand)]
    Rollout(rollouts::RolloutCommand),
    /// Rotate the root keys (needs the current root keys)
    #[command(subcommand)]
    Root(RootCommand),
    /// Make a signing key pair: FILE (private, 0600) and FILE.pub.json
    Keygen { file: PathBuf },
}

#[derive(Subcommand)]
enum NamespaceCommand {
    /// Delegate NAME/* to the vendor's public keys
    Add {
        name: String,
        /// The vendor's public key file (`outpost vendor keygen` writes it); repeat for more keys
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// How many of the keys must sign each release
        #[arg(long, default_value_t = 1)]
        threshold: u64,
    },
    /// Replace a namespace's keys (a vendor lost its key, or it was stolen)
    ///
    /// The old keys stop publishing at once. Nodes keep trusting them until
    /// the vendor publishes signed with a new key (`outpost vendor publish
    /// --key <new>`, a new release or one already published): that publish
    /// carries the new delegation, so nodes switch in one step.
    Rekey {
        name: String,
        /// The vendor's new public key file; repeat for more keys
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// How many of the keys must sign each release
        #[arg(long, default_value_t = 1)]
        threshold: u64,
    },
    /// List namespaces and their keys
    List,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new token for NAMESPACE (shown once; only its hash is kept)
    Create {
        namespace: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List tokens: id (a prefix of the token's hash), namespace, label, age
    List,
    /// Revoke the token with this id (from `token list`); it stops working at once
    Revoke { id: String },
}

#[derive(Subcommand)]
enum RootCommand {
    /// Sign root version N+1 with the current keys and the new ones
    Rotate {
        /// A current root private key; repeat up to the current threshold
        #[arg(long = "current-key", required = true)]
        current: Vec<PathBuf>,
        /// A new root private key (`outpost-registry keygen`); repeat for more
        #[arg(long = "new-key", required = true)]
        new: Vec<PathBuf>,
        /// How many new keys must sign the next root
        #[arg(long, default_value_t = 1)]
        threshold: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(error) = run(cli) {
        eprintln!("error: {}", outpost_registry::report::error_chain(&error));
        std::process::exit(1);
    }
}

fn load_public_keys(
    files: &[PathBuf],
) -> anyhow::Result<Vec<outpost_registry::tough::schema::key::Key>> {
    files
        .iter()
        .map(|file| Ok(keys::load_public(file)?))
        .collect()
}

fn online_keys(dir: &Path) -> anyhow::Result<OnlineKeys> {
    OnlineKeys::load(&dir.join("keys")).with_context(|| {
        format!(
            "cannot load the registry's online keys from {}; is this a registry made with `outpost-registry init`?",
            dir.join("keys").display()
        )
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = cli.data_dir;
    match cli.command {
        Command::Init {
            root_keys,
            root_key_count,
            root_threshold,
        } => {
            if root_threshold == 0 || root_threshold > root_key_count {
                bail!("--root-threshold must be between 1 and --root-key-count ({root_key_count})");
            }
            let store = RegistryStore::create(&dir)?;
            let online = OnlineKeys::generate()?;
            online.save(&dir.join("keys"))?;
            let root_dir = root_keys.unwrap_or_else(|| dir.join("root-keys"));
            std::fs::create_dir_all(&root_dir)
                .with_context(|| format!("cannot create {}", root_dir.display()))?;
            let mut keys = Vec::new();
            for n in 1..=root_key_count {
                let key = KeyPair::generate()?;
                key.save(&root_dir.join(format!("root-{n}")))?;
                keys.push(key);
            }
            let root =
                repository::init(&store, &keys, root_threshold, &online, Lifetimes::default())?;
            let root_path = dir.join("root.json");
            std::fs::write(&root_path, &root)
                .with_context(|| format!("cannot write {}", root_path.display()))?;
            println!("Registry created in {}", dir.display());
            println!(
                "  root keys:  {} (move them offline now)",
                root_dir.display()
            );
            println!(
                "  root.json:  {} (provision nodes with it)",
                root_path.display()
            );
            println!("Next: `outpost-registry namespace add <vendor> --key <vendor>.pub.json`");
        }
        Command::Serve {
            listen,
            max_blob_bytes,
            timestamp_lifetime,
            snapshot_lifetime,
            no_refresh,
            max_open_uploads,
            upload_idle_limit,
            tls_cert,
            tls_key,
        } => {
            let store = RegistryStore::open(&dir)?;
            let online = online_keys(&dir)?;
            let lifetimes = Lifetimes {
                timestamp: timestamp_lifetime,
                snapshot: snapshot_lifetime,
                ..Lifetimes::default()
            };
            let tls = match (&tls_cert, &tls_key) {
                (Some(cert), Some(key)) => Some(ServerTls::from_files(cert, key)?),
                _ => None,
            };
            if tls.is_none() && !listen.ip().is_loopback() {
                bail!(
                    "refusing to serve plain HTTP on {listen}: vendor and enrolment tokens would \
                     cross the network in clear. Give --tls-cert and --tls-key, or listen on \
                     127.0.0.1 behind a TLS proxy"
                );
            }
            if max_open_uploads == 0 {
                bail!("--max-open-uploads must be at least 1: with 0 no vendor could push");
            }
            let config = ServeConfig {
                lifetimes,
                max_blob_bytes,
                refresh_timestamp: !no_refresh,
                max_open_uploads_per_namespace: max_open_uploads,
                upload_idle_limit: std::time::Duration::try_from(upload_idle_limit)
                    .ok()
                    .filter(|limit| !limit.is_zero())
                    .context("--upload-idle-limit must be positive, such as 24h or 30m")?,
                tls,
            };
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                // A stale timestamp (the registry was down for a day) is
                // renewed at once rather than after the first wait.
                if !no_refresh {
                    repository::refresh_timestamp(&store, &online, lifetimes)?;
                }
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| {
                        format!("cannot listen on {listen}; is another registry running?")
                    })?;
                let scheme = if config.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                println!(
                    "outpost-registry serving on {scheme}://{}",
                    listener.local_addr()?
                );
                // A release every node would refuse is refused here, while
                // its version number is still free.
                let page_password = dir.join("fleet-page-password");
                let password = outpost_registry::web_login::password_file(&page_password)
                    .with_context(|| {
                        format!("reading the fleet page's password {}", page_password.display())
                    })?;
                println!(
                    "fleet page: {scheme}://{}/fleet/ (its password is in {})",
                    listener.local_addr()?,
                    page_password.display()
                );
                let registry = Arc::new(
                    Registry::new(store, online, config)
                        .with_release_check(Arc::new(ReleaseChecker::new()))
                        .with_fleet_page(password),
                );
                // The central team's changes (enrolment tokens, labels)
                // reach the running registry, the database's one writer,
                // through this socket.
                let admin_socket = control::socket_path(&dir);
                let admin = match control::bind(&dir) {
                    Ok(listener) => Some(tokio::spawn(
                        registry
                            .clone()
                            .serve_admin(listener, std::future::pending()),
                    )),
                    // Serving matters more; node and rollout commands then
                    // need the registry stopped, and say so.
                    Err(error) => {
                        eprintln!(
                            "warning: cannot make the admin socket {}: {error}; `outpost-registry node` and `rollout` commands will not reach this registry",
                            admin_socket.display()
                        );
                        None
                    }
                };
                let served = registry
                    .serve(listener, async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await;
                if let Some(admin) = admin {
                    admin.abort();
                    let _ = std::fs::remove_file(&admin_socket);
                }
                served?;
                anyhow::Ok(())
            })?;
        }
        Command::Node(command) => nodes::run(&dir, command)?,
        Command::Rollout(command) => rollouts::run(&dir, command)?,
        Command::Namespace(NamespaceCommand::Add {
            name,
            keys: key_files,
            threshold,
        }) => {
            let public = load_public_keys(&key_files)?;
            let store = RegistryStore::open(&dir)?;
            admin::add_namespace(&store, &name, public, threshold)?;
            println!(
                "namespace {name} created: {name}/* is delegated to {} key(s), threshold {threshold}",
                key_files.len()
            );
            println!("Next: `outpost-registry token create {name}` and give the vendor the token");
        }
        Command::Namespace(NamespaceCommand::Rekey {
            name,
            keys: key_files,
            threshold,
        }) => {
            let public = load_public_keys(&key_files)?;
            let store = RegistryStore::open(&dir)?;
            admin::replace_namespace_keys(&store, &name, public, threshold)?;
            println!(
                "namespace {name} now accepts releases signed by {} new key(s), threshold {threshold}; the old keys can no longer publish",
                key_files.len()
            );
            if repository::namespace_keys_in_effect(&store, &name)?.is_some() {
                println!(
                    "Nodes trust the new keys once the vendor publishes with one: `outpost vendor publish --key <new key> <package>` (a new version, or the latest one again)"
                );
            }
        }
        Command::Namespace(NamespaceCommand::List) => {
            let store = RegistryStore::open(&dir)?;
            let namespaces = store.namespaces()?;
            if namespaces.is_empty() {
                println!("No namespaces. Create one with `outpost-registry namespace add`.");
            }
            for (name, ns) in namespaces {
                let ids: Vec<String> = ns
                    .keys
                    .iter()
                    .map(|k| {
                        hex::encode(keys::key_id(k).as_ref())
                            .chars()
                            .take(16)
                            .collect()
                    })
                    .collect();
                // A vendor's release list that lapses stops every node from
                // loading this registry's metadata, so its expiry is shown.
                let releases = match repository::namespace_role(&store, &name)? {
                    Some(bytes) => {
                        let role: outpost_registry::tough::schema::Signed<
                            outpost_registry::tough::schema::Targets,
                        > = serde_json::from_slice(&bytes)?;
                        let expires = role.signed.expires;
                        let warning = if expires
                            < jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30)
                        {
                            " (soon: ask the vendor to publish again)"
                        } else {
                            ""
                        };
                        format!(
                            "{} release(s), signed list valid until {}{warning}",
                            role.signed.targets.len(),
                            expires.strftime("%Y-%m-%d")
                        )
                    }
                    None => "nothing published yet".to_string(),
                };
                let mut record_ids: Vec<String> = ns
                    .keys
                    .iter()
                    .map(|k| hex::encode(keys::key_id(k).as_ref()))
                    .collect();
                record_ids.sort();
                let releases = match repository::namespace_keys_in_effect(&store, &name)? {
                    Some(in_effect) if in_effect != record_ids => format!(
                        "{releases}; new keys wait for the vendor's next publish (nodes still trust the old ones)"
                    ),
                    _ => releases,
                };
                println!(
                    "{name}\tthreshold {}\tkeys {}\t{releases}",
                    ns.threshold,
                    ids.join(", ")
                );
            }
        }
        Command::Token(TokenCommand::Create { namespace, label }) => {
            let store = RegistryStore::open(&dir)?;
            let token = admin::issue_token(&store, &namespace, &label)?;
            println!("{token}");
        }
        Command::Token(TokenCommand::List) => {
            let store = RegistryStore::open(&dir)?;
            let tokens = store.tokens()?;
            if tokens.is_empty() {
                println!("No tokens. Create one with `outpost-registry token create <namespace>`.");
            }
            for (hash, record) in tokens {
                let created = jiff::Timestamp::from_second(record.created_at as i64)
                    .map(|t| t.strftime("%Y-%m-%d").to_string())
                    .unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{created}",
                    &hash[..12],
                    record.namespace,
                    record.label
                );
            }
        }
        Command::Token(TokenCommand::Revoke { id }) => {
            let store = RegistryStore::open(&dir)?;
            match store.revoke_token(&id)? {
                Ok(record) => println!("revoked {id} ({}, {})", record.namespace, record.label),
                Err(0) => bail!("no token has id {id}; `outpost-registry token list` shows them"),
                Err(n) => bail!("{n} tokens start with {id}; give more of the id"),
            }
        }
        Command::Root(RootCommand::Rotate {
            current,
            new,
            threshold,
        }) => {
            let current: Vec<KeyPair> = current
                .iter()
                .map(|p| KeyPair::load(p))
                .collect::<Result<_, _>>()?;
            let new_keys: Vec<KeyPair> = new
                .iter()
                .map(|p| KeyPair::load(p))
                .collect::<Result<_, _>>()?;
            if threshold == 0 || threshold as usize > new_keys.len() {
                bail!(
                    "--threshold must be between 1 and the number of new keys ({})",
                    new_keys.len()
                );
            }
            let store = RegistryStore::open(&dir)?;
            let mut online = online_keys(&dir)?;
            // A registry made before fleets gains its director with the
            // new root: the root is what delegates it.
            if online.director.is_none() {
                let director = KeyPair::generate()?;
                director.save(&dir.join("keys/director"))?;
                println!(
                    "made the director key {} (signs each node's desired state)",
                    dir.join("keys/director").display()
                );
                online.director = Some(director);
            }
            let version = repository::rotate_root(
                &store,
                &current,
                &new_keys,
                threshold,
                &online,
                Lifetimes::default(),
            )?;
            if let Some(root) = store.tuf_file("root.json")? {
                std::fs::write(dir.join("root.json"), root)?;
            }
            println!("root version {version} signed; nodes walk to it on their next update");
        }
        Command::Keygen { file } => {
            let key = KeyPair::generate()?;
            let public = key.save(&file)?;
            println!("private key: {} (keep it secret)", file.display());
            println!("public key:  {}", public.display());
        }
    }
    Ok(())
}
