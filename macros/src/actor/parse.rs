//! Reads `#[actor(...)]` options and the marked methods of the `impl` block.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::Parse as _;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, Token, Type};

use super::model::{Arg, Deployment, Handler, Hook, Kind, Options};
use crate::attr::{
    self, ASK_IN_PLACE, BACKOFF_MAX_MS, BACKOFF_MS, ENTITY, GROUP, KEY, MAILBOX, ON, OVERFLOW,
    OVERFLOW_POLICIES, PASSIVATE_AFTER_SECS, PUBLISHES, REPLY, RESTART, RESTART_POLICIES, RETRIES,
    STARTED, STOPPING, Seen, kw,
};
use crate::errors::Errors;

/// One `key = value` (or bare `key`) of `#[actor(...)]`.
struct OptionArg {
    key: &'static str,
    span: Span,
    value: Option<syn::Expr>,
}

/// Parses the `#[actor(...)]` arguments.
pub(crate) fn options(tokens: TokenStream, errors: &mut Errors) -> Options {
    let args = attr::parse_list(tokens, errors, |input| {
        let lookahead = input.lookahead1();
        let (key, span) = if lookahead.peek(kw::mailbox) {
            (MAILBOX, input.parse::<kw::mailbox>()?.span)
        } else if lookahead.peek(kw::overflow) {
            (OVERFLOW, input.parse::<kw::overflow>()?.span)
        } else if lookahead.peek(kw::restart) {
            (RESTART, input.parse::<kw::restart>()?.span)
        } else if lookahead.peek(kw::retries) {
            (RETRIES, input.parse::<kw::retries>()?.span)
        } else if lookahead.peek(kw::entity) {
            (ENTITY, input.parse::<kw::entity>()?.span)
        } else if lookahead.peek(kw::group) {
            (GROUP, input.parse::<kw::group>()?.span)
        } else if lookahead.peek(kw::passivate_after_secs) {
            (
                PASSIVATE_AFTER_SECS,
                input.parse::<kw::passivate_after_secs>()?.span,
            )
        } else if lookahead.peek(kw::backoff_ms) {
            (BACKOFF_MS, input.parse::<kw::backoff_ms>()?.span)
        } else if lookahead.peek(kw::backoff_max_ms) {
            (BACKOFF_MAX_MS, input.parse::<kw::backoff_max_ms>()?.span)
        } else if lookahead.peek(kw::ask_in_place) {
            (ASK_IN_PLACE, input.parse::<kw::ask_in_place>()?.span)
        } else {
            return Err(attr::unknown(input, lookahead, "`#[actor]` option"));
        };
        if key == ENTITY {
            if input.peek(Token![=]) {
                return Err(input.error(format!(
                    "`{ENTITY}` takes no value: write `#[actor({ENTITY})]`; each handler's key \
                     comes from the event's `#[event(key)]` field or from `#[on(key = field)]`"
                )));
            }
            return Ok(OptionArg {
                key,
                span,
                value: None,
            });
        }
        if !input.peek(Token![=]) {
            return Err(input.error(format!("expected `=` and a value: `{key} = ...`")));
        }
        input.parse::<Token![=]>()?;
        Ok(OptionArg {
            key,
            span,
            value: Some(input.parse()?),
        })
    });

    let mut options = Options::default();
    let mut seen = Seen::default();
    for arg in args {
        if !seen.first(arg.key, arg.span, errors) {
            continue;
        }
        let Some(value) = &arg.value else {
            // `entity`, the one bare key.
            set_deployment(&mut options, Deployment::Entity, arg.span, errors);
            continue;
        };
        match arg.key {
            MAILBOX => {
                options.mailbox = errors.ok(attr::positive_int::<u64>(value, "mailbox = 256")
                    .and_then(|(v, span)| {
                        let too_big = || {
                            let why = format!(
                                "a mailbox of {v} messages is no bound: \
                                 at most 4294967295 (u32::MAX), e.g. `mailbox = 256`"
                            );
                            syn::Error::new(span, why)
                        };
                        u32::try_from(v).map(|v| v as usize).map_err(|_| too_big())
                    }))
            }
            OVERFLOW => {
                options.overflow =
                    errors.ok(attr::choice(value, "overflow policy", OVERFLOW_POLICIES))
            }
            RESTART => {
                options.restart = errors.ok(attr::choice(value, "restart policy", RESTART_POLICIES))
            }
            RETRIES => options.retries = errors.ok(attr::int::<u32>(value, "retries = 3")),
            GROUP => {
                if let Some((size, _)) = errors.ok(attr::positive_int::<usize>(value, "group = 4"))
                {
                    set_deployment(&mut options, Deployment::Group(size), arg.span, errors);
                }
            }
            BACKOFF_MS => {
                options.backoff_ms = errors
                    .ok(attr::int::<u64>(value, "backoff_ms = 10"))
                    .map(|v| (v, arg.span))
            }
            BACKOFF_MAX_MS => {
                options.backoff_max_ms = errors
                    .ok(attr::int::<u64>(value, "backoff_max_ms = 5000"))
                    .map(|v| (v, arg.span))
            }
            ASK_IN_PLACE => {
                options.ask_in_place = errors
                    .ok(attr::boolean(value, "ask_in_place = false"))
                    .map(|v| (v, arg.span))
            }
            _ => {
                options.passivate_after_secs = errors.ok(attr::positive_int::<u64>(
                    value,
                    "passivate_after_secs = 120",
                ))
            }
        }
    }
    options
}

fn set_deployment(options: &mut Options, deployment: Deployment, span: Span, errors: &mut Errors) {
    if options.deployment_span.is_some() {
        errors.at(
            span,
            format!(
                "`{ENTITY}` and `{GROUP}` exclude each other: an actor is either one instance \
                 per key (`{ENTITY}`) or a pool of competing members (`{GROUP} = N`); keep one"
            ),
        );
        return;
    }
    options.deployment = deployment;
    options.deployment_span = Some(span);
}

/// A method's marker attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Marker {
    On,
    Reply,
    Started,
    Stopping,
}

impl Marker {
    fn of(attr: &syn::Attribute) -> Option<Marker> {
        let path = attr.path();
        // `#[on]` or `#[mercato::on]`.
        let last = path.segments.last()?;
        if path.segments.len() > 1 && path.segments.first().is_none_or(|s| s.ident != "mercato") {
            return None;
        }
        [
            (ON, Marker::On),
            (REPLY, Marker::Reply),
            (STARTED, Marker::Started),
            (STOPPING, Marker::Stopping),
        ]
        .into_iter()
        .find(|(name, _)| last.ident == name)
        .map(|(_, m)| m)
    }
}

/// What the methods of the `impl` block declare.
#[derive(Default)]
pub(crate) struct Methods {
    pub(crate) handlers: Vec<Handler>,
    pub(crate) started: Option<Hook>,
    pub(crate) stopping: Option<Hook>,
}

/// Reads the marked methods and strips their markers from `item`.
pub(crate) fn methods(item: &mut syn::ItemImpl, errors: &mut Errors) -> Methods {
    let mut methods = Methods::default();
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let mut markers = Vec::new();
        method.attrs.retain(|attr| match Marker::of(attr) {
            Some(marker) => {
                markers.push((marker, attr.clone()));
                false
            }
            None => true,
        });
        let Some((marker, attr)) = markers.first() else {
            continue;
        };
        if let Some((_, second)) = markers.get(1) {
            errors.spanned(
                second,
                "a method takes one of `#[on]`, `#[reply]`, `#[started]`, `#[stopping]`: \
                 remove this one",
            );
            continue;
        }
        match marker {
            Marker::On | Marker::Reply => {
                let kind = if *marker == Marker::On {
                    Kind::On
                } else {
                    Kind::Reply
                };
                if let Some(handler) = handler(method, kind, attr, errors) {
                    methods.handlers.push(handler);
                }
            }
            Marker::Started | Marker::Stopping => {
                let name = if *marker == Marker::Started {
                    STARTED
                } else {
                    STOPPING
                };
                let tokens = attr::arguments(attr, errors);
                if !tokens.is_empty() {
                    errors.spanned(tokens, format!("`#[{name}]` takes no arguments"));
                }
                let slot = if *marker == Marker::Started {
                    &mut methods.started
                } else {
                    &mut methods.stopping
                };
                if let Some(first) = slot {
                    errors.spanned(
                        attr,
                        format!(
                            "an actor has one `#[{name}]` hook, and `{}` is already marked: \
                             remove this one",
                            first.method
                        ),
                    );
                } else if let Some(hook) = hook(method, name, *marker == Marker::Stopping, errors) {
                    *slot = Some(hook);
                }
            }
        }
    }
    methods
}

/// Checks the receiver: `&mut self` or `&self`. `what` names the method kind.
fn receiver(method: &ImplItemFn, what: &str, errors: &mut Errors) -> bool {
    let sig = &method.sig;
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.colon_token.is_none() => true,
        Some(FnArg::Receiver(r)) => {
            errors.spanned(
                r,
                format!("{what} takes `&mut self` or `&self`: the actor keeps its state"),
            );
            false
        }
        _ => {
            errors.at(
                sig.ident.span(),
                format!(
                    "{what} is a method: add a `&mut self` (or `&self`) receiver, \
                     e.g. `fn {}(&mut self, ...)`",
                    sig.ident
                ),
            );
            false
        }
    }
}

/// Whether `ty` is a `Context` (by its last path segment), seen through `&`.
fn is_context(ty: &Type) -> bool {
    let inner = match ty {
        Type::Reference(r) => &*r.elem,
        other => other,
    };
    match inner {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Context"),
        _ => false,
    }
}

/// Checks a `Context` parameter: it must be `&mut Context<Self>`.
fn context(ty: &Type, errors: &mut Errors) {
    if !matches!(ty, Type::Reference(r) if r.mutability.is_some()) {
        errors.spanned(ty, "take the context as `&mut Context<Self>`");
    }
}

fn refuse_generics(method: &ImplItemFn, what: &str, errors: &mut Errors) {
    if !method.sig.generics.params.is_empty() {
        errors.spanned(
            &method.sig.generics,
            format!("{what} cannot be generic: it handles one concrete event type"),
        );
    }
}

/// Reads an `#[on]` or `#[reply]` method.
fn handler(
    method: &ImplItemFn,
    kind: Kind,
    attr: &syn::Attribute,
    errors: &mut Errors,
) -> Option<Handler> {
    let before = errors.len();
    let sig = &method.sig;
    let what = match kind {
        Kind::On => "an `#[on]` handler",
        Kind::Reply => "a `#[reply]` handler",
    };
    refuse_generics(method, what, errors);
    receiver(method, what, errors);

    let mut args = Vec::new();
    let mut event: Option<(Type, bool)> = None;
    for input in sig.inputs.iter() {
        let FnArg::Typed(pat) = input else { continue };
        let ty = &*pat.ty;
        if is_context(ty) {
            if args.contains(&Arg::Context) {
                errors.spanned(
                    ty,
                    format!("{what} takes at most one context: remove this one"),
                );
                continue;
            }
            context(ty, errors);
            args.push(Arg::Context);
            continue;
        }
        if let Some((first, _)) = &event {
            errors.spanned(
                ty,
                format!(
                    "{what} takes exactly one event, and it already takes `{}`: remove this \
                     parameter, or make one event type that carries both",
                    first.to_token_stream()
                ),
            );
            continue;
        }
        let (ty, by_ref) = match ty {
            Type::Reference(r) if r.mutability.is_some() => {
                errors.spanned(
                    ty,
                    format!(
                        "take the event as `&{0}` or by value as `{0}`, not `&mut`: \
                         it may be shared with other subscribers",
                        r.elem.to_token_stream()
                    ),
                );
                ((*r.elem).clone(), true)
            }
            Type::Reference(r) => ((*r.elem).clone(), true),
            other => (other.clone(), false),
        };
        event = Some((ty, by_ref));
        args.push(Arg::Event);
    }
    let Some((event, by_ref)) = event else {
        let example = match kind {
            Kind::On => "e: &ItemAdded",
            Kind::Reply => "q: &GetCart",
        };
        errors.spanned(
            &sig.inputs,
            format!(
                "{what} takes the event it handles as a parameter: \
                 e.g. `fn {}(&mut self, {example})`",
                sig.ident
            ),
        );
        return None;
    };

    let output = match &sig.output {
        syn::ReturnType::Default => None,
        syn::ReturnType::Type(_, ty) if matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()) => {
            None
        }
        syn::ReturnType::Type(_, ty) => Some((**ty).clone()),
    };
    let output_span = match &sig.output {
        syn::ReturnType::Default => sig.ident.span(),
        syn::ReturnType::Type(_, ty) => ty.span(),
    };
    if kind == Kind::Reply && output.is_none() {
        errors.at(
            output_span,
            format!(
                "a `#[reply]` handler returns the reply: add its type, e.g. \
                 `fn {}(&self, q: &{}) -> YourReply`; to handle an event without replying, \
                 use `#[on]`",
                sig.ident,
                event.to_token_stream()
            ),
        );
    }

    let mut key = None;
    let mut publishes = Vec::new();
    let mut seen = Seen::default();
    let tokens = attr::arguments(attr, errors);
    let entries = attr::parse_list(tokens, errors, |input| {
        let lookahead = input.lookahead1();
        if kind == Kind::On && lookahead.peek(kw::key) {
            let span = input.parse::<kw::key>()?.span;
            input.parse::<Token![=]>()?;
            let field: syn::Ident = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected the event's field name, e.g. `key = cart_id`",
                )
            })?;
            Ok((KEY, span, Some(field), Vec::new()))
        } else if kind == Kind::Reply && input.peek(kw::key) {
            Err(input.error(format!(
                "`{KEY}` routes published events to entities; a `#[reply]` handler answers \
                 an `ask` sent to one address: remove it"
            )))
        } else if lookahead.peek(kw::publishes) {
            let span = input.parse::<kw::publishes>()?.span;
            input.parse::<Token![=]>()?;
            let content;
            syn::bracketed!(content in input);
            let types = content.parse_terminated(Type::parse, Token![,])?;
            Ok((PUBLISHES, span, None, types.into_iter().collect()))
        } else {
            Err(attr::unknown(input, lookahead, "handler option"))
        }
    });
    for (name, span, field, types) in entries {
        if !seen.first(name, span, errors) {
            continue;
        }
        if field.is_some() {
            key = field;
        } else {
            publishes = types;
        }
    }

    if errors.len() > before {
        return None;
    }
    Some(Handler {
        kind,
        variant: variant_name(&sig.ident),
        method: sig.ident.clone(),
        is_async: sig.asyncness.is_some(),
        args,
        event,
        by_ref,
        output,
        output_span,
        key,
        publishes,
    })
}

/// `item_added` → `ItemAdded`.
fn variant_name(method: &syn::Ident) -> syn::Ident {
    let name = method.to_string();
    let name = name.trim_start_matches("r#");
    let mut out = String::new();
    let mut upper = true;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    syn::Ident::new(&out, method.span())
}

/// Reads a `#[started]` or `#[stopping]` method.
fn hook(method: &ImplItemFn, name: &str, stopping: bool, errors: &mut Errors) -> Option<Hook> {
    let before = errors.len();
    let what = format!("the `#[{name}]` hook");
    let sig = &method.sig;
    refuse_generics(method, &what, errors);
    receiver(method, &what, errors);
    let mut context = false;
    for input in sig.inputs.iter() {
        let FnArg::Typed(pat) = input else { continue };
        if is_context(&pat.ty) && !context {
            self::context(&pat.ty, errors);
            context = true;
        } else {
            errors.spanned(
                &pat.ty,
                format!(
                    "{what} takes only `&mut self` and, optionally, `cx: &mut Context<Self>`: \
                     remove this parameter"
                ),
            );
        }
    }
    let output_span = match &sig.output {
        syn::ReturnType::Default => sig.ident.span(),
        syn::ReturnType::Type(_, ty) => {
            let unit = matches!(&**ty, Type::Tuple(t) if t.elems.is_empty());
            if stopping && !unit {
                errors.spanned(ty, format!("{what} returns `()`: it cannot fail"));
            }
            ty.span()
        }
    };
    if errors.len() > before {
        return None;
    }
    Some(Hook {
        method: sig.ident.clone(),
        is_async: sig.asyncness.is_some(),
        context,
        output_span,
    })
}
