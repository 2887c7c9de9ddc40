//! Shared attribute parsing: the names of every attribute and key in one
//! place, comma-separated lists that keep going after a bad entry,
//! "specified more than once" errors, and literal checks.

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt as _;
use syn::parse::{Lookahead1, ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Expr, Lit, Token};

use crate::errors::Errors;

/// `#[event(...)]`, on an event type and on its key field.
pub(crate) const EVENT: &str = "event";
/// `#[event(name = "...")]`: the wire name.
pub(crate) const NAME: &str = "name";
/// `#[event(version = N)]`: the schema version.
pub(crate) const VERSION: &str = "version";
/// `#[event(key)]` on a field, `#[on(key = field)]` on a handler.
pub(crate) const KEY: &str = "key";

/// `#[on]`: an event handler inside `#[actor]`.
pub(crate) const ON: &str = "on";
/// `#[reply]`: a query handler inside `#[actor]`.
pub(crate) const REPLY: &str = "reply";
/// `#[started]`: the lifecycle hook run before the first message.
pub(crate) const STARTED: &str = "started";
/// `#[stopping]`: the lifecycle hook run when the actor stops.
pub(crate) const STOPPING: &str = "stopping";
/// `#[on(publishes = [A, B])]`: the events a handler publishes.
pub(crate) const PUBLISHES: &str = "publishes";

/// `#[actor(mailbox = N)]`: the mailbox capacity.
pub(crate) const MAILBOX: &str = "mailbox";
/// `#[actor(overflow = Policy)]`.
pub(crate) const OVERFLOW: &str = "overflow";
/// `#[actor(restart = Policy)]`.
pub(crate) const RESTART: &str = "restart";
/// `#[actor(retries = N)]`.
pub(crate) const RETRIES: &str = "retries";
/// `#[actor(entity)]`: one instance per key.
pub(crate) const ENTITY: &str = "entity";
/// `#[actor(group = N)]`: a pool of N competing members.
pub(crate) const GROUP: &str = "group";
/// `#[actor(passivate_after_secs = N)]`: idle time before an entity stops.
pub(crate) const PASSIVATE_AFTER_SECS: &str = "passivate_after_secs";
/// `#[actor(backoff_ms = N)]`: the first wait before a retry or restart.
pub(crate) const BACKOFF_MS: &str = "backoff_ms";
/// `#[actor(backoff_max_ms = N)]`: the longest wait before a retry or restart.
pub(crate) const BACKOFF_MAX_MS: &str = "backoff_max_ms";
/// `#[actor(ask_in_place = false)]`: whether an ask may run the loop in the
/// asker's task.
pub(crate) const ASK_IN_PLACE: &str = "ask_in_place";

/// The overflow policies, as written in `overflow = …`.
pub(crate) const OVERFLOW_POLICIES: &[&str] =
    &["Backpressure", "Reject", "DropOldest", "DropNewest"];
/// The restart policies, as written in `restart = …`.
pub(crate) const RESTART_POLICIES: &[&str] = &["Permanent", "Transient", "Temporary"];

/// The keywords, for `lookahead1` to list the accepted keys.
pub(crate) mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(version);
    syn::custom_keyword!(key);
    syn::custom_keyword!(publishes);
    syn::custom_keyword!(mailbox);
    syn::custom_keyword!(overflow);
    syn::custom_keyword!(restart);
    syn::custom_keyword!(retries);
    syn::custom_keyword!(entity);
    syn::custom_keyword!(group);
    syn::custom_keyword!(passivate_after_secs);
    syn::custom_keyword!(backoff_ms);
    syn::custom_keyword!(backoff_max_ms);
    syn::custom_keyword!(ask_in_place);
}

/// The error for a key that is none of those `lookahead` peeked for:
/// "unknown {what} `colour`: expected one of: `a`, `b`", at the key.
pub(crate) fn unknown(input: ParseStream<'_>, lookahead: Lookahead1<'_>, what: &str) -> syn::Error {
    let expected = lookahead.error();
    match input.fork().call(syn::Ident::parse_any) {
        Ok(ident) => syn::Error::new(
            ident.span(),
            format!("unknown {what} `{ident}`: {expected}"),
        ),
        Err(_) => expected,
    }
}

/// Parses a comma-separated list with `one`, recording a bad entry's error
/// and going on with the next entry, so every mistake is reported.
pub(crate) fn parse_list<T>(
    tokens: TokenStream,
    errors: &mut Errors,
    mut one: impl FnMut(ParseStream<'_>) -> syn::Result<T>,
) -> Vec<T> {
    let mut items = Vec::new();
    let mut found = Vec::new();
    let parser = |input: ParseStream<'_>| -> syn::Result<()> {
        while !input.is_empty() {
            match one(input) {
                Ok(item) => {
                    items.push(item);
                    if !input.is_empty() && !input.peek(Token![,]) {
                        found.push(input.error("expected `,` between two entries"));
                    }
                }
                Err(error) => found.push(error),
            }
            // Skip what is left of a bad entry, up to the next comma.
            while !input.is_empty() && !input.peek(Token![,]) {
                input.parse::<proc_macro2::TokenTree>()?;
            }
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(())
    };
    if let Err(error) = parser.parse2(tokens) {
        found.push(error);
    }
    for error in found {
        errors.push(error);
    }
    items
}

/// The tokens inside an attribute's parentheses (empty for a bare `#[on]`),
/// or an error for `#[on = …]`.
pub(crate) fn arguments(attr: &syn::Attribute, errors: &mut Errors) -> TokenStream {
    match &attr.meta {
        syn::Meta::Path(_) => TokenStream::new(),
        syn::Meta::List(list) => list.tokens.clone(),
        syn::Meta::NameValue(nv) => {
            let name = attr
                .path()
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            errors.spanned(
                nv.eq_token,
                format!("expected `#[{name}(...)]` or `#[{name}]`, not `#[{name} = ...]`"),
            );
            TokenStream::new()
        }
    }
}

/// Keys seen in one attribute list, to refuse a second one.
#[derive(Default)]
pub(crate) struct Seen(HashMap<&'static str, Span>);

impl Seen {
    /// Whether `key` is new here; if not, records a "specified more than
    /// once" error at its second occurrence.
    pub(crate) fn first(&mut self, key: &'static str, span: Span, errors: &mut Errors) -> bool {
        if self.0.contains_key(key) {
            errors.at(
                span,
                format!("`{key}` is specified more than once: remove this one"),
            );
            false
        } else {
            self.0.insert(key, span);
            true
        }
    }

    /// Where `key` was given, if it was.
    pub(crate) fn get(&self, key: &str) -> Option<Span> {
        self.0.get(key).copied()
    }
}

/// An unsuffixed integer literal (e.g. `3`) that fits a `T`, or an error
/// at `expr` that shows `example`.
pub(crate) fn int<T>(expr: &Expr, example: &str) -> syn::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            if !int.suffix().is_empty() {
                return Err(syn::Error::new(
                    int.span(),
                    format!(
                        "remove the `{}` suffix: write e.g. `{example}`",
                        int.suffix()
                    ),
                ));
            }
            int.base10_parse()
                .map_err(|e| syn::Error::new(int.span(), format!("{e}: write e.g. `{example}`")))
        }
        _ => Err(syn::Error::new(
            expr.span(),
            format!("expected an integer literal, e.g. `{example}`"),
        )),
    }
}

/// A positive integer literal (e.g. `256`) that fits a `T`, with its span,
/// or an error at `expr` that shows `example`.
pub(crate) fn positive_int<T>(expr: &Expr, example: &str) -> syn::Result<(T, Span)>
where
    T: std::str::FromStr + Default + PartialEq,
    T::Err: std::fmt::Display,
{
    let value: T = int(expr, example).map_err(|e| {
        if matches!(
            expr,
            Expr::Lit(syn::ExprLit {
                lit: Lit::Int(_),
                ..
            })
        ) {
            e
        } else {
            syn::Error::new(
                expr.span(),
                format!("expected a positive integer literal, e.g. `{example}`"),
            )
        }
    })?;
    if value == T::default() {
        return Err(syn::Error::new(
            expr.span(),
            format!("must be at least 1, e.g. `{example}`"),
        ));
    }
    Ok((value, expr.span()))
}

/// A `true` or `false` literal, or an error showing `example`.
pub(crate) fn boolean(expr: &Expr, example: &str) -> syn::Result<bool> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        _ => Err(syn::Error::new(
            expr.span(),
            format!("expected `true` or `false`, e.g. `{example}`"),
        )),
    }
}

/// One of `choices` written as a bare identifier (`Reject`) or a path
/// ending in one (`Overflow::Reject`), or an error listing them.
pub(crate) fn choice(expr: &Expr, what: &str, choices: &[&str]) -> syn::Result<syn::Ident> {
    let list = choices
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Expr::Path(path) = expr {
        if let Some(last) = path.path.segments.last() {
            if choices.iter().any(|c| last.ident == c) {
                return Ok(last.ident.clone());
            }
        }
    }
    let written = quote::ToTokens::to_token_stream(expr).to_string();
    Err(syn::Error::new(
        expr.span(),
        format!("unknown {what} `{written}`: expected one of {list}"),
    ))
}
