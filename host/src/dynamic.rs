//! Calling any exported function with JSON arguments: `outpost call`.
//!
//! For vendors and operators poking at a plugin by hand. Arguments are JSON
//! in WIT's own shapes, converted using the function's real types before the
//! plugin runs, so a bad argument is refused with the path to the bad part:
//!
//! - records are objects keyed by field name (`ship-to`, or `ship_to`);
//! - variants are `"case"` or `{"case": payload}`; enums are `"case"`;
//! - `option` is `null` or the value; `result` is `{"ok": v}` or `{"err": v}`;
//! - `list<u8>` is an array of numbers, a UTF-8 string, or `"hex:0a1b..."`.
//!
//! Results come back in the same shapes; `list<u8>` as a string when it is
//! UTF-8 text, else as `"hex:..."`.

use crate::api::schema;
use crate::bindings::types::PluginError;
use crate::call::CallError;
use crate::card_data::CardGuard;
use crate::node::Node;
use crate::plugins::LoadedPlugin;
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::sync::Arc;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Record};
use wasmtime::component::{ComponentExportIndex, Type, Val};

#[derive(Debug, thiserror::Error)]
pub enum DynamicCallError {
    #[error("{plugin} exports no function {name:?}; it exports: {available}")]
    NoSuchFunction {
        plugin: String,
        name: String,
        available: String,
    },
    #[error("{name:?} matches more than one export ({candidates}); write it as interface.function")]
    Ambiguous { name: String, candidates: String },
    #[error("{function} takes {expected} argument(s) ({names}) but {given} were given")]
    ArgumentCount {
        function: String,
        expected: usize,
        names: String,
        given: usize,
    },
    #[error("argument `{name}`{path}: {message}")]
    BadArgument {
        name: String,
        path: String,
        message: String,
    },
    #[error(transparent)]
    Call(#[from] CallError),
    /// A `tokenize` call tried to put the card it was given somewhere; the
    /// node refused that and the call. Never holds the card itself.
    #[error(
        "plugin {plugin}, {function} (call {call_id}): {channel} carried the card number, so the \
         node refused the call and kept nothing that carried it; the vendor must fix the plugin \
         (docs/vendor-guides/payment-tokenizer.md)"
    )]
    CardData {
        plugin: String,
        function: String,
        call_id: u64,
        channel: String,
    },
}

/// An exported function: `printer.render-label`.
#[derive(Debug, Clone)]
pub struct ExportedFunction {
    /// The interface's short name: `printer`.
    pub interface: String,
    /// The full export name: `outpost:plugins/printer@0.1.0`.
    pub export: String,
    pub function: String,
    /// `render-label(label: shipping-label) -> ...`, simplified.
    pub signature: String,
}

impl ExportedFunction {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.interface, self.function)
    }
}

fn short_interface(export: &str) -> String {
    let path = export.split('@').next().unwrap_or(export);
    path.rsplit('/').next().unwrap_or(path).to_string()
}

fn type_name(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(list) => format!("list<{}>", type_name(&list.ty())),
        Type::Option(option) => format!("option<{}>", type_name(&option.ty())),
        Type::Result(result) => format!(
            "result<{}, {}>",
            result.ok().map_or("_".into(), |t| type_name(&t)),
            result.err().map_or("_".into(), |t| type_name(&t))
        ),
        Type::Tuple(tuple) => format!(
            "tuple<{}>",
            tuple
                .types()
                .map(|t| type_name(&t))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Record(_) => "record".into(),
        Type::Variant(_) => "variant".into(),
        Type::Enum(_) => "enum".into(),
        Type::Flags(_) => "flags".into(),
        _ => "resource".into(),
    }
}

fn signature(name: &str, func: &ComponentFunc) -> String {
    let params: Vec<String> = func
        .params()
        .map(|(param, ty)| format!("{param}: {}", type_name(&ty)))
        .collect();
    let results: Vec<String> = func.results().map(|ty| type_name(&ty)).collect();
    if results.is_empty() {
        format!("{name}({})", params.join(", "))
    } else {
        format!("{name}({}) -> {}", params.join(", "), results.join(", "))
    }
}

/// Every function `plugin` exports, across its interfaces.
pub fn exported_functions(node: &Node, plugin: &LoadedPlugin) -> Vec<ExportedFunction> {
    let Ok(engine) = node.engines.get(plugin.engine_kind) else {
        return Vec::new();
    };
    let mut functions = Vec::new();
    for (export, item) in plugin.component().component_type().exports(engine) {
        if let ComponentItem::ComponentInstance(instance) = item.ty {
            for (name, item) in instance.exports(engine) {
                if let ComponentItem::ComponentFunc(func) = item.ty {
                    functions.push(ExportedFunction {
                        interface: short_interface(export),
                        export: export.to_string(),
                        function: name.to_string(),
                        signature: signature(name, &func),
                    });
                }
            }
        }
    }
    functions
}

fn find(
    node: &Node,
    plugin: &LoadedPlugin,
    name: &str,
) -> Result<(ExportedFunction, ComponentFunc, ComponentExportIndex), DynamicCallError> {
    let functions = exported_functions(node, plugin);
    let matches: Vec<&ExportedFunction> = functions
        .iter()
        .filter(|f| f.qualified() == name || f.function == name)
        .collect();
    let found = match matches.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(DynamicCallError::NoSuchFunction {
                plugin: plugin.id().to_string(),
                name: name.to_string(),
                available: functions
                    .iter()
                    .map(ExportedFunction::qualified)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        many => {
            return Err(DynamicCallError::Ambiguous {
                name: name.to_string(),
                candidates: many
                    .iter()
                    .map(|f| f.qualified())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    let not_found = || DynamicCallError::NoSuchFunction {
        plugin: plugin.id().to_string(),
        name: name.to_string(),
        available: String::new(),
    };
    let engine = node
        .engines
        .get(plugin.engine_kind)
        .map_err(|_| not_found())?;
    let component = plugin.component();
    let instance_index = component
        .get_export_index(None, &found.export)
        .ok_or_else(not_found)?;
    let index = component
        .get_export_index(Some(&instance_index), &found.function)
        .ok_or_else(not_found)?;
    let component_type = component.component_type();
    let instance_type = match component_type
        .get_export(engine, &found.export)
        .map(|e| e.ty)
    {
        Some(ComponentItem::ComponentInstance(instance)) => instance,
        _ => return Err(not_found()),
    };
    let ty = match instance_type
        .get_export(engine, &found.function)
        .map(|e| e.ty)
    {
        Some(ComponentItem::ComponentFunc(func)) => func,
        _ => return Err(not_found()),
    };
    Ok((found, ty, index))
}

/// Spreads one JSON document into `name`'s arguments, as `outpost call
/// F @input.json` and the test-kit give them: an array is the arguments in
/// order; an object whose keys are all parameter names (snake_case or
/// kebab-case) is the arguments by name, as the API's request bodies and
/// `docs/examples/` hold them (`{"label": {...}}`); anything else is the
/// one argument of a one-parameter function.
pub fn spread_arguments(
    node: &Node,
    plugin: &LoadedPlugin,
    name: &str,
    document: Value,
) -> Result<Vec<Value>, DynamicCallError> {
    let (function, ty, _) = find(node, plugin, name)?;
    let params: Vec<(String, bool)> = ty
        .params()
        .map(|(param, ty)| (param.to_string(), matches!(ty, Type::Option(_))))
        .collect();
    // A one-parameter function taking a list or tuple gets an array as it.
    let takes_array = ty
        .params()
        .next()
        .is_some_and(|(_, ty)| matches!(ty, Type::List(_) | Type::Tuple(_)));
    let names = || {
        params
            .iter()
            .map(|(n, _)| n.replace('-', "_"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let lookup = |object: &serde_json::Map<String, Value>, param: &str| {
        object
            .get(param)
            .or_else(|| object.get(&param.replace('-', "_")))
            .cloned()
    };
    match document {
        Value::Array(items) if !(params.len() == 1 && takes_array) => Ok(items),
        Value::Object(object)
            if !object.is_empty()
                && object.keys().all(|key| {
                    params
                        .iter()
                        .any(|(p, _)| p == key || p.replace('-', "_") == *key)
                }) =>
        {
            let mut values = Vec::with_capacity(params.len());
            for (param, optional) in &params {
                match lookup(&object, param) {
                    Some(value) => values.push(value),
                    None if *optional => values.push(Value::Null),
                    None => {
                        return Err(DynamicCallError::BadArgument {
                            name: param.clone(),
                            path: String::new(),
                            message: format!(
                                "missing from the arguments object (it names {}; {} takes {})",
                                object.keys().cloned().collect::<Vec<_>>().join(", "),
                                function.qualified(),
                                names()
                            ),
                        });
                    }
                }
            }
            Ok(values)
        }
        other if params.len() == 1 => Ok(vec![other]),
        // By name, with a name the function does not have: say which.
        Value::Object(object) => {
            let unknown: Vec<&String> = object
                .keys()
                .filter(|key| {
                    !params
                        .iter()
                        .any(|(p, _)| p == *key || p.replace('-', "_") == **key)
                })
                .collect();
            Err(DynamicCallError::BadArgument {
                name: unknown
                    .first()
                    .map_or_else(String::new, |key| key.to_string()),
                path: String::new(),
                message: format!(
                    "{} takes no argument by that name; it takes {}",
                    function.qualified(),
                    names()
                ),
            })
        }
        _ => Err(DynamicCallError::ArgumentCount {
            function: function.qualified(),
            expected: params.len(),
            names: names(),
            given: 1,
        }),
    }
}

/// Calls `name` on `plugin` with `args`, returning the results as JSON.
pub fn call(
    node: &Node,
    plugin: &LoadedPlugin,
    name: &str,
    args: &[Value],
) -> Result<Value, DynamicCallError> {
    let results = call_values(node, plugin, name, args, false)?;
    // snake_case field names, as the API answers and `docs/examples/` hold.
    Ok(match results.as_slice() {
        [] => Value::Null,
        [one] => to_json(one, true),
        many => Value::Array(many.iter().map(|v| to_json(v, true)).collect()),
    })
}

/// Like [`call`], for a function returning `result<T, plugin-error>`: the
/// plugin's error goes through the invoker like a typed call's (counted,
/// logged, a `CallFailure::Plugin` with its call id), and the value comes
/// back as JSON with snake_case field names, as the local API speaks.
pub fn call_for_api(
    node: &Node,
    plugin: &LoadedPlugin,
    name: &str,
    args: &[Value],
) -> Result<Value, DynamicCallError> {
    let results = call_values(node, plugin, name, args, true)?;
    Ok(match results.into_iter().next() {
        None => Value::Null,
        Some(Val::Result(Ok(value))) => value.map_or(Value::Null, |v| to_json(&v, true)),
        Some(other) => to_json(&other, true),
    })
}

/// The `plugin-error` in `results`, if the call returned one.
fn plugin_error(results: &[Val]) -> Option<PluginError> {
    let [Val::Result(Err(Some(error)))] = results else {
        return None;
    };
    let Val::Variant(case, Some(payload)) = &**error else {
        return None;
    };
    let Val::String(text) = &**payload else {
        return None;
    };
    let text = text.clone();
    Some(match case.as_str() {
        "invalid-input" => PluginError::InvalidInput(text),
        "unavailable" => PluginError::Unavailable(text),
        "denied" => PluginError::Denied(text),
        "internal" => PluginError::Internal(text),
        _ => return None,
    })
}

/// Makes the call. With `plugin_errors`, a returned `plugin-error` is
/// handed to the invoker as the plugin's error instead of as a value.
fn call_values(
    node: &Node,
    plugin: &LoadedPlugin,
    name: &str,
    args: &[Value],
    plugin_errors: bool,
) -> Result<Vec<Val>, DynamicCallError> {
    let (function, ty, index) = find(node, plugin, name)?;
    let params: Vec<(String, Type)> = ty
        .params()
        .map(|(name, ty)| (name.to_string(), ty))
        .collect();
    if params.len() != args.len() {
        return Err(DynamicCallError::ArgumentCount {
            function: function.qualified(),
            expected: params.len(),
            names: params
                .iter()
                .map(|(name, ty)| format!("{name}: {}", type_name(ty)))
                .collect::<Vec<_>>()
                .join(", "),
            given: args.len(),
        });
    }
    let mut values = Vec::with_capacity(args.len());
    for ((name, ty), arg) in params.iter().zip(args) {
        let mut path = String::new();
        let value =
            to_val(arg, ty, &mut path).map_err(|message| DynamicCallError::BadArgument {
                name: name.clone(),
                path,
                // Fields differ between contract versions: say which one
                // this plugin speaks, so a caller sending 0.2.0's fields to
                // a 0.1.0 plugin knows why (the API, `outpost call`, the
                // test-kit alike).
                message: if message.starts_with("unknown field") {
                    format!(
                        "{message} ({} is built against {})",
                        plugin.id(),
                        plugin.manifest.world
                    )
                } else {
                    message
                },
            })?;
        values.push(value);
    }
    let result_count = ty.results().len();
    // The card a `tokenize` call is given is the one thing the node knows
    // the plugin must not put out; the guard watches for it (`card_data`).
    let card = crate::card_data::pan_argument(&function.export, &function.function, &values)
        .and_then(CardGuard::new)
        .map(Arc::new);
    let guard = card.clone();
    let outcome = node
        .invoker
        .call(plugin, function.qualified(), move |store, instance, _| {
            let func = instance
                .get_func(&mut *store, index)
                .ok_or_else(|| wasmtime::format_err!("the export vanished"))?;
            if let Some(guard) = &guard {
                guard.arm(store.data_mut());
            }
            let mut results = vec![Val::Bool(false); result_count];
            let called = func.call(&mut *store, &values, &mut results);
            if let Some(guard) = &guard {
                guard.check_output(&store.data().output);
                if called.is_ok() {
                    guard.check_results(&results);
                }
                if let Some(channel) = guard.refusals() {
                    // Failing the call is what keeps its result out of the
                    // API's answer, the outbox and the centre's events.
                    return Err(wasmtime::format_err!(
                        "refused: {channel} carried the card number of this call"
                    ));
                }
            }
            called?;
            match plugin_error(&results).filter(|_| plugin_errors) {
                Some(error) => Ok(Err(error)),
                None => Ok(Ok(results)),
            }
        });
    match (outcome, card.and_then(|card| card.refusals())) {
        (Err(error), Some(channel)) => Err(DynamicCallError::CardData {
            plugin: format!("{}@{}", error.plugin, error.version),
            function: error.function.to_string(),
            call_id: error.call_id,
            channel,
        }),
        (outcome, _) => Ok(outcome?),
    }
}

fn number<T: TryFrom<i64> + TryFrom<u64>>(json: &Value, what: &str) -> Result<T, String> {
    let out_of_range = || format!("{json} does not fit {what}");
    if let Some(n) = json.as_u64() {
        T::try_from(n).map_err(|_| out_of_range())
    } else if let Some(n) = json.as_i64() {
        T::try_from(n).map_err(|_| out_of_range())
    } else {
        Err(format!("expected {what}, got {json}"))
    }
}

fn bytes_from(text: &str) -> Result<Vec<u8>, String> {
    match text.strip_prefix("hex:") {
        Some(hex_text) => hex::decode(hex_text).map_err(|e| format!("bad hex: {e}")),
        None => Ok(text.as_bytes().to_vec()),
    }
}

/// A `local-datetime` record (year to second) from the API's text form.
fn local_datetime(record: &Record, text: &str) -> Option<Val> {
    const PARTS: [&str; 6] = ["year", "month", "day", "hour", "minute", "second"];
    if record.fields().len() != PARTS.len() || record.fields().zip(PARTS).any(|(f, p)| f.name != p)
    {
        return None;
    }
    let at = schema::parse_local_datetime(text)?;
    let values = [
        Val::U16(at.year),
        Val::U8(at.month),
        Val::U8(at.day),
        Val::U8(at.hour),
        Val::U8(at.minute),
        Val::U8(at.second),
    ];
    Some(Val::Record(
        PARTS.iter().map(|p| p.to_string()).zip(values).collect(),
    ))
}

/// Whether a JSON key names the WIT field `field`: its kebab-case name, or
/// the same with every `-` written `_` (never a mix); compared in place,
/// since it runs for every key of every record an API call carries.
fn names_field(key: &str, field: &str) -> bool {
    key == field
        || (key.len() == field.len()
            && key
                .bytes()
                .zip(field.bytes())
                .all(|(k, f)| if f == b'-' { k == b'_' } else { k == f }))
}

/// Converts `json` to a value of type `ty`; `path` says where a problem is.
pub fn to_val(json: &Value, ty: &Type, path: &mut String) -> Result<Val, String> {
    let expected = |what: &str| format!("expected {what}, got {json}");
    Ok(match ty {
        Type::Bool => Val::Bool(json.as_bool().ok_or_else(|| expected("true or false"))?),
        Type::S8 => Val::S8(number(json, "s8")?),
        Type::U8 => Val::U8(number(json, "u8")?),
        Type::S16 => Val::S16(number(json, "s16")?),
        Type::U16 => Val::U16(number(json, "u16")?),
        Type::S32 => Val::S32(number(json, "s32")?),
        Type::U32 => Val::U32(number(json, "u32")?),
        Type::S64 => Val::S64(number(json, "s64")?),
        Type::U64 => Val::U64(number(json, "u64")?),
        Type::Float32 => Val::Float32(json.as_f64().ok_or_else(|| expected("a number"))? as f32),
        Type::Float64 => Val::Float64(json.as_f64().ok_or_else(|| expected("a number"))?),
        Type::Char => {
            let text = json
                .as_str()
                .ok_or_else(|| expected("a one-character string"))?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(expected("a one-character string")),
            }
        }
        Type::String => Val::String(json.as_str().ok_or_else(|| expected("a string"))?.into()),
        Type::List(list) => {
            let item = list.ty();
            if let (Type::U8, Some(text)) = (&item, json.as_str()) {
                return Ok(Val::List(
                    bytes_from(text)?.into_iter().map(Val::U8).collect(),
                ));
            }
            let items = json.as_array().ok_or_else(|| expected("an array"))?;
            let mut values = Vec::with_capacity(items.len());
            for (index, element) in items.iter().enumerate() {
                let before = path.len();
                let _ = write!(path, "[{index}]");
                values.push(to_val(element, &item, path)?);
                path.truncate(before);
            }
            Val::List(values)
        }
        Type::Record(record) => {
            // A `local-datetime` as the API takes it: "2026-11-23T14:05".
            if let Some(text) = json.as_str()
                && let Some(at) = local_datetime(record, text)
            {
                return Ok(at);
            }
            let object = json.as_object().ok_or_else(|| expected("an object"))?;
            for key in object.keys() {
                if !record.fields().any(|field| names_field(key, field.name)) {
                    let names: Vec<&str> = record.fields().map(|field| field.name).collect();
                    return Err(format!(
                        "unknown field {key:?}; fields are {}",
                        names.join(", ")
                    ));
                }
            }
            let mut values = Vec::with_capacity(record.fields().len());
            for field in record.fields() {
                let name = field.name;
                let value = object.get(name).or_else(|| {
                    object
                        .iter()
                        .find(|(key, _)| names_field(key, name))
                        .map(|(_, value)| value)
                });
                let before = path.len();
                path.push('.');
                path.push_str(name);
                // Left out: what the API would take (`schema::default_field`).
                let value = match (value, &field.ty) {
                    (Some(value), _) => to_val(value, &field.ty, path)?,
                    (None, Type::Option(_)) => Val::Option(None),
                    (None, _) => match schema::default_field(&name.replace('-', "_")) {
                        Some(default) => to_val(&default, &field.ty, path)?,
                        None => return Err("missing".into()),
                    },
                };
                path.truncate(before);
                values.push((name.to_string(), value));
            }
            Val::Record(values)
        }
        Type::Tuple(tuple) => {
            let items = json.as_array().ok_or_else(|| expected("an array"))?;
            let types: Vec<Type> = tuple.types().collect();
            if items.len() != types.len() {
                return Err(format!(
                    "expected {} elements, got {}",
                    types.len(),
                    items.len()
                ));
            }
            let mut values = Vec::new();
            for (index, (element, element_ty)) in items.iter().zip(&types).enumerate() {
                let before = path.len();
                let _ = write!(path, "[{index}]");
                values.push(to_val(element, element_ty, path)?);
                path.truncate(before);
            }
            Val::Tuple(values)
        }
        Type::Variant(variant) => {
            let (case, payload) = match json {
                Value::String(case) => (case.clone(), None),
                Value::Object(object) if object.len() == 1 => {
                    let (case, payload) = object.iter().next().ok_or_else(|| expected("a case"))?;
                    (case.clone(), Some(payload))
                }
                _ => return Err(expected("\"case\" or {\"case\": payload}")),
            };
            let found = variant.cases().find(|c| c.name == case).ok_or_else(|| {
                let names: Vec<&str> = variant.cases().map(|c| c.name).collect();
                format!("unknown case {case:?}; cases are {}", names.join(", "))
            })?;
            let payload = match (found.ty, payload) {
                (None, None) => None,
                (Some(ty), Some(payload)) => {
                    path.push('.');
                    path.push_str(&case);
                    Some(Box::new(to_val(payload, &ty, path)?))
                }
                (None, Some(_)) => return Err(format!("case {case:?} takes no payload")),
                (Some(_), None) => {
                    return Err(format!(
                        "case {case:?} needs a payload: {{\"{case}\": ...}}"
                    ));
                }
            };
            Val::Variant(case, payload)
        }
        Type::Enum(enumeration) => {
            let case = json.as_str().ok_or_else(|| expected("a case name"))?;
            if !enumeration.names().any(|name| name == case) {
                let names: Vec<&str> = enumeration.names().collect();
                return Err(format!(
                    "unknown case {case:?}; cases are {}",
                    names.join(", ")
                ));
            }
            Val::Enum(case.to_string())
        }
        Type::Option(option) => match json {
            Value::Null => Val::Option(None),
            other => Val::Option(Some(Box::new(to_val(other, &option.ty(), path)?))),
        },
        Type::Result(result) => {
            let object = json.as_object().filter(|o| o.len() == 1);
            let (key, value) = object
                .and_then(|o| o.iter().next())
                .ok_or_else(|| expected("{\"ok\": ...} or {\"err\": ...}"))?;
            let ty = match key.as_str() {
                "ok" => result.ok(),
                "err" => result.err(),
                other => return Err(format!("{other:?} is neither ok nor err")),
            };
            let inner = match ty {
                Some(ty) => Some(Box::new(to_val(value, &ty, path)?)),
                None => None,
            };
            Val::Result(if key == "ok" { Ok(inner) } else { Err(inner) })
        }
        Type::Flags(flags) => {
            let items = json
                .as_array()
                .ok_or_else(|| expected("an array of flag names"))?;
            let mut set = Vec::new();
            for item in items {
                let name = item.as_str().ok_or_else(|| expected("flag names"))?;
                if !flags.names().any(|n| n == name) {
                    return Err(format!("unknown flag {name:?}"));
                }
                set.push(name.to_string());
            }
            Val::Flags(set)
        }
        other => {
            return Err(format!(
                "{} values cannot be given as JSON",
                type_name(other)
            ));
        }
    })
}

/// Converts a value back to JSON.
pub fn from_val(value: &Val) -> Value {
    to_json(value, false)
}

/// A non-empty `list<u8>` as JSON answers carry it: the text when it is
/// printable, else `"hex:…"`.
pub fn bytes_to_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.contains(|c: char| c.is_control() && !c.is_whitespace()) => json!(text),
        _ => json!(format!("hex:{}", hex::encode(bytes))),
    }
}

/// A `list<u8>` from JSON in any shape answers give it: text, `"hex:…"`,
/// or an array of numbers (`[]` when empty).
pub fn bytes_from_json(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(text) => bytes_from(text).ok(),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect(),
        _ => None,
    }
}

/// Converts a value to JSON; with `snake`, record fields are snake_case.
fn to_json(value: &Val, snake: bool) -> Value {
    let from_val = |v: &Val| to_json(v, snake);
    match value {
        Val::Bool(b) => json!(b),
        Val::S8(n) => json!(n),
        Val::U8(n) => json!(n),
        Val::S16(n) => json!(n),
        Val::U16(n) => json!(n),
        Val::S32(n) => json!(n),
        Val::U32(n) => json!(n),
        Val::S64(n) => json!(n),
        Val::U64(n) => json!(n),
        Val::Float32(n) => json!(n),
        Val::Float64(n) => json!(n),
        Val::Char(c) => json!(c.to_string()),
        Val::String(s) => json!(s),
        Val::List(items) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|item| match item {
                    Val::U8(byte) => Some(*byte),
                    _ => None,
                })
                .collect();
            match bytes {
                Some(bytes) if !items.is_empty() => bytes_to_json(&bytes),
                _ => Value::Array(items.iter().map(from_val).collect()),
            }
        }
        Val::Record(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| {
                    let name = if snake {
                        name.replace('-', "_")
                    } else {
                        name.clone()
                    };
                    (name, from_val(value))
                })
                .collect::<Map<_, _>>(),
        ),
        Val::Tuple(items) | Val::FixedLengthList(items) => {
            Value::Array(items.iter().map(from_val).collect())
        }
        Val::Variant(case, None) | Val::Enum(case) => json!(case),
        Val::Variant(case, Some(payload)) => json!({ case: from_val(payload) }),
        Val::Option(None) => Value::Null,
        Val::Option(Some(inner)) => from_val(inner),
        Val::Result(Ok(inner)) => json!({ "ok": inner.as_deref().map(from_val) }),
        Val::Result(Err(inner)) => json!({ "err": inner.as_deref().map(from_val) }),
        Val::Flags(flags) => json!(flags),
        Val::Map(pairs) => Value::Array(
            pairs
                .iter()
                .map(|(k, v)| json!([from_val(k), from_val(v)]))
                .collect(),
        ),
        _ => json!("<resource>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_lists_print_as_text_or_hex() {
        let text = Val::List(b"^XA".iter().copied().map(Val::U8).collect());
        assert_eq!(from_val(&text), json!("^XA"));
        let binary = Val::List(vec![Val::U8(0x1b), Val::U8(0x40)]);
        assert_eq!(from_val(&binary), json!("hex:1b40"));
        assert_eq!(bytes_from("hex:1b40").expect("hex"), vec![0x1b, 0x40]);
    }

    #[test]
    fn results_and_variants_have_one_key() {
        let ok = Val::Result(Ok(Some(Box::new(Val::String("x".into())))));
        assert_eq!(from_val(&ok), json!({"ok": "x"}));
        let err = Val::Result(Err(Some(Box::new(Val::Variant(
            "invalid-input".into(),
            Some(Box::new(Val::String("why".into()))),
        )))));
        assert_eq!(from_val(&err), json!({"err": {"invalid-input": "why"}}));
    }

    #[test]
    fn json_keys_name_fields_in_either_case() {
        assert!(names_field("utc-offset-minutes", "utc-offset-minutes"));
        assert!(names_field("utc_offset_minutes", "utc-offset-minutes"));
        // One spelling or the other, not a mix of the two.
        assert!(!names_field("utc_offset-minutes", "utc-offset-minutes"));
        assert!(!names_field("utc-offset_minutes", "utc-offset-minutes"));
        assert!(!names_field("utc_offset_minute", "utc-offset-minutes"));
        assert!(!names_field("utcXoffsetXminutes", "utc-offset-minutes"));
    }
}
