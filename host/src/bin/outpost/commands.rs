//! What each command does.

use crate::cli::{
    BundleCommand, Command, ForecastCommand, KeysCommand, OutboxCommand, PluginCommand, TradeInput,
    TrustCommand, VendorCommand,
};
use crate::link::Link;
use crate::trade::{self, BacktestInput, ForecastInput, Input};
use anyhow::{Context, bail};
use outpost::api;
use outpost::config::{DEFAULT_CONFIG_TOML, NodeConfig};
use outpost::dynamic;
use outpost::manifest::PluginId;
use outpost::node::{Node, NodeError, NodeOptions};
use outpost::store::StoreError;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn run(command: Command, data_dir: &Path, config: Option<&Path>) -> anyhow::Result<()> {
    match command {
        Command::Run { listen } => run_node(data_dir, config, listen),
        Command::Plugin(PluginCommand::Add { path, yes }) => {
            crate::plugins::add(data_dir, config, &path, yes)
        }
        Command::Plugin(PluginCommand::List { json }) => {
            crate::plugins::list(data_dir, config, json)
        }
        Command::Plugin(PluginCommand::Follow { spec }) => {
            crate::plugins::follow(data_dir, config, &spec)
        }
        Command::Plugin(PluginCommand::Unfollow { plugin }) => {
            crate::plugins::unfollow(data_dir, config, &plugin)
        }
        Command::Update(command) => crate::updates::run(data_dir, config, command),
        Command::Plugin(PluginCommand::Install {
            spec,
            registry,
            plugin,
            yes,
        }) => crate::plugins::install(
            data_dir,
            config,
            &spec,
            registry.as_deref(),
            plugin.as_deref(),
            yes,
        ),
        Command::Plugin(PluginCommand::Search {
            query,
            registry,
            json,
        }) => crate::registry::search(
            data_dir,
            config,
            query.as_deref(),
            registry.as_deref(),
            json,
        ),
        Command::Trust(TrustCommand::Init { root, registry, ca }) => {
            crate::registry::trust_init(data_dir, config, &root, registry.as_deref(), ca.as_deref())
        }
        Command::Fleet(command) => crate::fleet::run(data_dir, config, command),
        Command::Setup(args) => crate::service::setup(data_dir, config, args),
        Command::Token(command) => crate::service::token(data_dir, config, command),
        Command::Backup(args) => crate::backups::backup(data_dir, config, args),
        Command::Doctor { json } => crate::runbook::doctor(data_dir, config, json),
        Command::Print(command) => crate::runbook::print(data_dir, config, command),
        Command::Drill(args) => crate::runbook::drill(data_dir, config, args),
        Command::Plugin(PluginCommand::Approve { plugin }) => {
            crate::plugins::approve(data_dir, config, &plugin)
        }
        Command::Restore(args) => crate::backups::restore(data_dir, config, args),
        Command::Console(command) => crate::console::console(data_dir, config, command),
        Command::Telemetry(command) => crate::console::telemetry(data_dir, config, command),
        Command::Trust(TrustCommand::Show) => crate::registry::trust_show(data_dir, config),
        Command::Trust(TrustCommand::Update {
            registry,
            clock_was_wrong,
        }) => crate::registry::trust_update(data_dir, config, registry.as_deref(), clock_was_wrong),
        Command::Bundle(BundleCommand::Export {
            plugins,
            output,
            registry,
        }) => {
            crate::registry::bundle_export(data_dir, config, &plugins, &output, registry.as_deref())
        }
        Command::Vendor(VendorCommand::Keygen { file }) => crate::registry::keygen(&file),
        Command::Vendor(VendorCommand::New {
            kind,
            id,
            dir,
            sdk_path,
        }) => crate::vendor::new(kind, &id, dir.as_deref(), sdk_path.as_deref()),
        Command::Vendor(VendorCommand::Package {
            folder,
            out,
            target_dir,
            quiet,
        }) => crate::vendor::package_command(&folder, out, target_dir, quiet),
        Command::Vendor(VendorCommand::Check {
            path,
            beyond_default_policy,
        }) => crate::vendor::check_command(&path, beyond_default_policy),
        Command::Vendor(VendorCommand::Watch { folder, every_ms }) => crate::vendor::watch(
            &folder,
            data_dir,
            config,
            Duration::from_millis(every_ms.max(50)),
        ),
        Command::Vendor(VendorCommand::Sandbox(args)) => crate::vendor::sandbox::run(&args),
        Command::Vendor(VendorCommand::Publish {
            package,
            registry,
            keys,
            token,
            registry_ca,
            valid_for,
            beyond_default_policy,
        }) => crate::registry::publish(
            &package,
            &registry,
            registry_ca.as_deref(),
            &keys,
            &token,
            valid_for,
            beyond_default_policy,
        ),
        Command::Plugin(PluginCommand::Info { plugin, json }) => {
            crate::plugins::info(data_dir, config, &plugin, json)
        }
        Command::Plugin(PluginCommand::Remove { plugin, purge }) => {
            crate::plugins::remove(data_dir, config, &plugin, purge)
        }
        Command::Call {
            plugin,
            function,
            args,
        } => call(data_dir, config, &plugin, function.as_deref(), &args),
        Command::Config { defaults } => show_config(data_dir, config, defaults),
        Command::Tokenize { input } => {
            trade::tokenize(&Link::open(data_dir, config)?, as_input(&input))
        }
        Command::Quote { input } => trade::quote(&Link::open(data_dir, config)?, as_input(&input)),
        Command::Book {
            input,
            quote,
            reference,
            print,
        } => trade::book(
            &Link::open(data_dir, config)?,
            as_input(&input),
            quote,
            reference,
            print,
        ),
        Command::Booking {
            id,
            print,
            cancel,
            plugin,
            json,
        } => trade::booking(
            &Link::open(data_dir, config)?,
            &id,
            plugin.as_deref(),
            cancel,
            print,
            json,
        ),
        Command::Track {
            number,
            plugin,
            json,
        } => trade::track(
            &Link::open(data_dir, config)?,
            &number,
            plugin.as_deref(),
            json,
        ),
        Command::Forecast {
            check:
                Some(ForecastCommand::Backtest {
                    csv,
                    calendar,
                    horizon,
                    origins,
                    coverage,
                    plugin,
                    json,
                }),
            ..
        } => trade::backtest(
            &Link::open(data_dir, config)?,
            BacktestInput {
                csv,
                calendar,
                horizon,
                origins,
                coverage,
                plugin,
                json,
            },
        ),
        Command::Forecast {
            check: None,
            input,
            csv,
            calendar,
            until,
            item,
            unit,
            horizon,
            coverage,
        } => trade::forecast(
            &Link::open(data_dir, config)?,
            as_input(&input),
            ForecastInput {
                csv,
                calendar,
                until,
                item,
                unit,
                horizon,
                coverage,
            },
        ),
        Command::Outbox(command) => {
            let link = Link::open(data_dir, config)?;
            match command {
                OutboxCommand::List { state, limit, json } => {
                    crate::outbox::list(&link, state.as_deref(), limit as usize, json)
                }
                OutboxCommand::Show { id, json } => crate::outbox::show(&link, id, json),
                OutboxCommand::Retry { id } => crate::outbox::retry(&link, id),
                OutboxCommand::Drop { id } => crate::outbox::drop(&link, id),
            }
        }
        Command::Keys(KeysCommand::Add {
            plugin,
            name,
            import,
            replace,
        }) => crate::keys::add(data_dir, config, &plugin, &name, import.as_deref(), replace),
        Command::Keys(KeysCommand::List { plugin, json }) => {
            crate::keys::list(data_dir, config, plugin.as_deref(), json)
        }
        Command::Keys(KeysCommand::Remove { plugin, name }) => {
            crate::keys::remove(data_dir, config, &plugin, &name)
        }
        Command::Demo { .. } => bail!("the demo is started by main"),
    }
}

fn as_input(input: &TradeInput) -> Input<'_> {
    Input {
        file: input.file.as_deref(),
        plugin: input.plugin.as_deref(),
        json: input.json,
    }
}

pub fn open(data_dir: &Path, config: Option<&Path>) -> anyhow::Result<Node> {
    let options = NodeOptions::resolve(data_dir, config)?;
    before_opening(data_dir)?;
    open_waiting(&options, || false)
        .with_context(|| format!("cannot open the node in {}", data_dir.display()))
}

/// Before this process opens the node itself, and so may make files in its
/// data directory: run with `sudo` on a node another user owns (the
/// service's), become that user, so nothing made there is root's (see
/// `users::act_as_owner`). A command that only talks to a running node
/// stays who it is, and reads the files it is given as that.
pub fn before_opening(data_dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    crate::users::act_as_owner(data_dir)?;
    #[cfg(not(unix))]
    let _ = data_dir;
    Ok(())
}

/// How long a command waits for another to let go of the database.
const BUSY_WAIT: Duration = Duration::from_millis(2500);

/// Opens the node, waiting up to [`BUSY_WAIT`] while another process holds
/// the database: two commands started together (a script, two terminals)
/// take turns instead of one failing. `holder_serves` says to stop waiting
/// because the holder is a node that answers its API.
pub fn open_waiting(
    options: &NodeOptions,
    mut holder_serves: impl FnMut() -> bool,
) -> Result<Node, NodeError> {
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match Node::open(options.clone()) {
            Err(NodeError::Store(StoreError::InUse { .. }))
                if Instant::now() < deadline && !holder_serves() =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(node) => {
                crate::registry::remove_stale_packages(&options.data_dir);
                return Ok(node);
            }
            result => return result,
        }
    }
}

pub fn plugin_id(text: &str) -> anyhow::Result<PluginId> {
    PluginId::parse(text)
        .map_err(|why| anyhow::anyhow!("{why}; `outpost plugin list` shows the ids"))
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("outpost")
        .build()
        .context("cannot start the async runtime")
}

fn run_node(
    data_dir: &Path,
    config: Option<&Path>,
    listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let node = Arc::new(open(data_dir, config)?);
    let token = api::load_or_create_token(&node)?;
    let listen = listen.unwrap_or(node.config().api.listen);
    if !listen.ip().is_loopback() {
        tracing::warn!(
            %listen,
            "the local API is reachable from the network; it is meant for apps on this machine"
        );
    }
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {listen}; is another node running? pick another address with \
                 --listen or api.listen in outpost.toml"
                )
            })?;
        let address = listener.local_addr()?;
        let plugins = node.plugins();
        let unavailable = plugins.iter().filter(|p| p.status != "active").count();
        tracing::info!(
            data_dir = %node.data_dir().display(),
            config = node.config_origin(),
            "node running: API on http://{address}, {} plugin(s) active, {unavailable} unavailable",
            plugins.len() - unavailable,
        );
        let stopping = crate::service::stop_on_signals()?;
        let stopped = move || {
            let mut stopping = stopping.clone();
            async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            }
        };
        #[cfg(unix)]
        let admin = {
            let listener = api::admin::bind(node.data_dir()).with_context(|| {
                format!(
                    "cannot open the admin socket {}",
                    api::admin::socket_path(node.data_dir()).display()
                )
            })?;
            tokio::spawn(api::admin::serve(node.clone(), listener, stopped()))
        };
        let background = outpost::control::start_background(&node, stopped.clone());
        crate::service::notify_systemd("READY=1");
        let served = api::serve(node.clone(), listener, token, stopped())
            .await
            .context("the local API stopped");
        tracing::info!("node stopped");
        for task in background {
            task.abort();
        }
        #[cfg(unix)]
        {
            admin.abort();
            let _ = std::fs::remove_file(api::admin::socket_path(node.data_dir()));
        }
        served
    })
}

fn call(
    data_dir: &Path,
    config: Option<&Path>,
    plugin: &str,
    function: Option<&str>,
    args: &[String],
) -> anyhow::Result<()> {
    let node = open(data_dir, config)?;
    let id = plugin_id(plugin)?;
    let loaded = node
        .loaded(&id)
        .with_context(|| match node.plugin_status(&id) {
            Some(status) => format!("{id} is unavailable: {}", status.reason.unwrap_or_default()),
            None => format!("{id} is not installed; `outpost plugin list` shows what is"),
        })?;
    let Some(function) = function else {
        println!("{id} exports:");
        for exported in dynamic::exported_functions(&node, &loaded) {
            println!("  {}.{}", exported.interface, exported.signature);
        }
        return Ok(());
    };
    if args.iter().filter(|arg| *arg == "@-").count() > 1 {
        bail!("only one argument can come from standard input (`@-`); put the others in files");
    }
    let mut values = Vec::with_capacity(args.len());
    for (index, arg) in args.iter().enumerate() {
        values.push(call_argument(index, arg)?);
    }
    // One `@input.json` holds every argument, by name or in order.
    if let ([file], [document]) = (args, values.as_slice())
        && file.starts_with('@')
    {
        values = dynamic::spread_arguments(&node, &loaded, function, document.clone())?;
    }
    let result = dynamic::call(&node, &loaded, function, &values)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    // A `result` the plugin answered with its error: the answer is printed,
    // and the exit status says it failed, for scripts.
    if let Some(error) = result
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("err"))
    {
        bail!(
            "{id} {function} answered with its {} error (above)",
            error
                .as_object()
                .and_then(|e| e.keys().next())
                .map_or("", String::as_str)
        );
    }
    Ok(())
}

/// One `outpost call` argument: JSON, or `@FILE` (`@-`: standard input)
/// holding JSON.
fn call_argument(index: usize, arg: &str) -> anyhow::Result<serde_json::Value> {
    let Some(file) = arg.strip_prefix('@') else {
        return serde_json::from_str(arg).with_context(|| {
            format!(
                "argument {} is not JSON: {arg:?} (quote strings twice, as '\"receipt\"'; \
                 `@FILE` reads it from a file)",
                index + 1
            )
        });
    };
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
    };
    let name = if file == "-" { "standard input" } else { file };
    serde_json::from_str(&text).with_context(|| format!("{name} is not JSON"))
}

fn show_config(data_dir: &Path, config: Option<&Path>, defaults: bool) -> anyhow::Result<()> {
    if defaults {
        print!("{DEFAULT_CONFIG_TOML}");
        return Ok(());
    }
    let (config, origin) = NodeConfig::resolve(data_dir, config)?;
    println!("# data directory: {}", data_dir.display());
    println!("# configuration: {origin}");
    print!("{}", config.to_toml());
    Ok(())
}
