//! Routes that call a plugin of a given kind: payments, shipping, forecasts.
//!
//! Each route names a kind and one of its functions. The request body is
//! `{"plugin": "vendor/name" (optional), "<argument>": {...}}`; the argument
//! is converted to the function's WIT type with the function's real type
//! information, so a wrong field is refused with its path before any plugin
//! runs. Field names are snake_case (kebab-case is accepted too); enum and
//! variant cases are written as in WIT (`"in-transit"`). Without `plugin`
//! the node uses `defaults.<kind>` or the only plugin of that kind.

use super::errors::ApiError;
use crate::dynamic::{self, DynamicCallError};
use crate::node::Node;
use crate::plugin_id::PluginId;
use crate::plugins::LoadedPlugin;
use crate::worlds::PluginKind;
use serde_json::{Map, Value};
use std::sync::Arc;

/// One plugin-backed route.
#[derive(Debug, Clone, Copy)]
pub struct KindRoute {
    pub kind: PluginKind,
    /// The function, qualified: `tokenizer.tokenize`.
    pub function: &'static str,
    /// The body field holding the argument, or "" when it comes from the path.
    pub argument: &'static str,
    /// The response field holding the result.
    pub result: &'static str,
}

pub const TOKENIZE: KindRoute = KindRoute {
    kind: PluginKind::PaymentTokenizer,
    function: "tokenizer.tokenize",
    argument: "card",
    result: "token",
};
pub const AUTHORIZE_OFFLINE: KindRoute = KindRoute {
    kind: PluginKind::PaymentTokenizer,
    function: "tokenizer.authorize-offline",
    argument: "payment",
    result: "decision",
};
pub const QUOTES: KindRoute = KindRoute {
    kind: PluginKind::CourierAdapter,
    function: "courier.request-quotes",
    argument: "request",
    result: "quotes",
};
pub const BOOK: KindRoute = KindRoute {
    kind: PluginKind::CourierAdapter,
    function: "courier.book",
    argument: "request",
    result: "booking",
};
pub const BOOKING_STATUS: KindRoute = KindRoute {
    kind: PluginKind::CourierAdapter,
    function: "courier.booking-status",
    argument: "",
    result: "booking",
};
pub const CANCEL: KindRoute = KindRoute {
    kind: PluginKind::CourierAdapter,
    function: "courier.cancel",
    argument: "",
    result: "cancelled",
};
pub const TRACK: KindRoute = KindRoute {
    kind: PluginKind::CourierAdapter,
    function: "courier.track",
    argument: "",
    result: "tracking",
};
pub const FORECAST: KindRoute = KindRoute {
    kind: PluginKind::Forecaster,
    function: "forecasting.forecast",
    argument: "request",
    result: "forecast",
};

fn setting(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::PrinterDriver => "defaults.printer-driver",
        PluginKind::PaymentTokenizer => "defaults.payment-tokenizer",
        PluginKind::CourierAdapter => "defaults.courier-adapter",
        PluginKind::Forecaster => "defaults.forecaster",
    }
}

/// The plugin a request asked for, or the default for the route's kind.
pub fn pick(
    node: &Node,
    kind: PluginKind,
    requested: Option<&str>,
) -> Result<Arc<LoadedPlugin>, ApiError> {
    let Some(requested) = requested else {
        return node.default_plugin(kind).ok_or_else(|| ApiError::NoPlugin {
            kind: kind.world_name(),
            setting: setting(kind),
        });
    };
    let id = PluginId::parse(requested).map_err(|why| ApiError::BadField {
        field: "plugin".into(),
        message: why,
    })?;
    let plugin = node
        .loaded(&id)
        .ok_or_else(|| match node.plugin_status(&id) {
            Some(status) => ApiError::PluginUnavailable {
                plugin: id.to_string(),
                reason: status.reason.unwrap_or_default(),
            },
            None => ApiError::NotFound(format!("no plugin {id} is installed")),
        })?;
    if plugin.kind() != kind {
        return Err(ApiError::BadField {
            field: "plugin".into(),
            message: format!(
                "{id} is a {}, not a {}",
                plugin.kind().world_name(),
                kind.world_name()
            ),
        });
    }
    Ok(plugin)
}

/// The request body: `plugin` and the route's argument, nothing else.
pub fn split_body(route: &KindRoute, body: Value) -> Result<(Option<String>, Value), ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::BadField {
            field: String::new(),
            message: format!(
                "the body must be a JSON object with `{}` (and optionally `plugin`)",
                route.argument
            ),
        });
    };
    let plugin = match fields.remove("plugin") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(other) => {
            return Err(ApiError::BadField {
                field: "plugin".into(),
                message: format!("expected a plugin id such as \"acme/courier\", got {other}"),
            });
        }
    };
    let argument = fields
        .remove(route.argument)
        .ok_or_else(|| ApiError::BadField {
            field: route.argument.into(),
            message: "missing".into(),
        })?;
    if let Some(unknown) = fields.keys().next() {
        return Err(ApiError::BadField {
            field: unknown.clone(),
            message: format!(
                "unknown field; this route takes `{}` and `plugin`",
                route.argument
            ),
        });
    }
    Ok((plugin, argument))
}

/// How far past its deadline a converted answer may come: scheduling noise,
/// not work.
const LATE_SLACK: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs `route` with `argument` on the chosen plugin, off the async threads,
/// and counts it among the business measures (see `metrics`).
pub async fn call(
    node: &Arc<Node>,
    route: KindRoute,
    plugin: Option<String>,
    argument: Value,
) -> Result<Value, ApiError> {
    let plugin = pick(node, route.kind, plugin.as_deref())?;
    let id = plugin.id().clone();
    let started = std::time::Instant::now();
    let result = call_picked(node, route, plugin, argument).await;
    let metrics = node.metrics();
    match route.function {
        "tokenizer.tokenize" => metrics.payment("tokenize", result.is_ok()),
        "tokenizer.authorize-offline" => metrics.payment("authorize_offline", result.is_ok()),
        "courier.book" => {
            let state = match &result {
                Ok(body) => match body[route.result]["state"].as_str() {
                    Some("confirmed") => "confirmed",
                    Some("queued") => "queued",
                    Some("rejected") => "rejected",
                    _ => "failed",
                },
                Err(_) => "failed",
            };
            if state == "queued" {
                metrics.courier(id.as_str());
            }
            metrics.booking(state, started.elapsed());
        }
        _ => {}
    }
    result
}

async fn call_picked(
    node: &Arc<Node>,
    route: KindRoute,
    plugin: Arc<LoadedPlugin>,
    argument: Value,
) -> Result<Value, ApiError> {
    // Events name the plugin and what a path-argument route acted on (the
    // booking cancelled); without a centre there is nothing to keep.
    let event_context = node.events().enabled().then(|| {
        (
            plugin.id().to_string(),
            argument.as_str().map(str::to_string),
        )
    });
    // Wait for a place on this task, not on a blocking thread.
    let admission = node
        .invoker()
        .admit(&plugin, route.function)
        .await
        .map_err(ApiError::Call)?;
    let caller = node.clone();
    let deadline = plugin.spec.limits.deadline;
    let plugin_name = plugin.id().to_string();
    let started = std::time::Instant::now();
    let outcome = admission
        .run(move || dynamic::call_for_api(&caller, &plugin, route.function, &[argument]))
        .await
        .map_err(|_| ApiError::ShuttingDown)?;
    let value = outcome.map_err(|error| match error {
        DynamicCallError::BadArgument {
            name,
            path,
            message,
        } => ApiError::BadField {
            field: format!(
                "{}{path}",
                if route.argument.is_empty() {
                    name
                } else {
                    route.argument.to_string()
                }
            ),
            message,
        },
        DynamicCallError::Call(error) => ApiError::Call(error),
        card @ DynamicCallError::CardData { .. } => ApiError::CardData(card.to_string()),
        other => ApiError::PluginContract(other.to_string()),
    })?;
    // The caller's deadline covers turning the result into JSON too.
    if started.elapsed() > deadline + LATE_SLACK {
        return Err(ApiError::AnsweredLate {
            plugin: plugin_name,
            deadline,
        });
    }
    let mut body = Map::new();
    body.insert(route.result.to_string(), value);
    let body = Value::Object(body);
    if let Some((plugin_id, subject)) = event_context
        && let Some((kind, data)) =
            crate::events::for_call(route.function, &plugin_id, subject.as_deref(), &body)
    {
        node.events().record_async(kind, data).await?;
    }
    Ok(body)
}
