//! Reads the `#[event(...)]` attributes of a type and its fields.

use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Token};

use super::model::{Event, KeyField};
use crate::attr::{self, EVENT, KEY, NAME, Seen, VERSION, kw};
use crate::errors::Errors;

/// One entry of the type's `#[event(...)]`.
enum TypeArg {
    Name(syn::Expr, proc_macro2::Span),
    Version(syn::Expr, proc_macro2::Span),
}

/// Reads `input` into the model, recording every malformed attribute.
pub(crate) fn parse(input: &DeriveInput, errors: &mut Errors) -> Event {
    let mut event = Event {
        ident: input.ident.clone(),
        generics: input.generics.clone(),
        name: None,
        version: None,
        key: None,
        attr_span: None,
    };
    let mut seen = Seen::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident(EVENT)) {
        event.attr_span.get_or_insert(attr.path().span());
        let tokens = attr::arguments(attr, errors);
        let args = attr::parse_list(tokens, errors, |input| {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::name) {
                let key = input.parse::<kw::name>()?;
                input.parse::<Token![=]>()?;
                Ok(TypeArg::Name(input.parse()?, key.span))
            } else if lookahead.peek(kw::version) {
                let key = input.parse::<kw::version>()?;
                input.parse::<Token![=]>()?;
                Ok(TypeArg::Version(input.parse()?, key.span))
            } else if input.peek(kw::key) {
                Err(input.error(format!(
                    "`{KEY}` goes on a field, not on the type: \
                     `#[{EVENT}({KEY})] cart_id: CartId`"
                )))
            } else {
                Err(attr::unknown(input, lookahead, "`#[event]` key"))
            }
        });
        for arg in args {
            match arg {
                TypeArg::Name(expr, span) => {
                    if seen.first(NAME, span, errors) {
                        event.name = name(&expr, errors);
                    }
                }
                TypeArg::Version(expr, span) => {
                    if seen.first(VERSION, span, errors) {
                        event.version = errors
                            .ok(attr::positive_int::<u32>(&expr, "version = 1"))
                            .map(|(v, _)| v);
                    }
                }
            }
        }
    }
    // A failed `name`/`version` was reported where it was written: do not
    // also report it as missing.
    if seen.get(NAME).is_some() && event.name.is_none() {
        event.name = Some((String::new(), proc_macro2::Span::call_site()));
    }
    if seen.get(VERSION).is_some() && event.version.is_none() {
        event.version = Some(0);
    }
    parse_fields(input, &mut event, errors);
    event
}

/// A non-empty string literal.
fn name(expr: &syn::Expr, errors: &mut Errors) -> Option<(String, proc_macro2::Span)> {
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => {
            let value = s.value();
            if value.trim().is_empty() {
                errors.at(
                    s.span(),
                    format!(
                        "the wire name cannot be empty: write e.g. `{NAME} = \"shop.item_added\"`"
                    ),
                );
                None
            } else {
                Some((value, s.span()))
            }
        }
        _ => {
            errors.spanned(
                expr,
                format!("expected a string literal, e.g. `{NAME} = \"shop.item_added\"`"),
            );
            None
        }
    }
}

/// Finds the `#[event(key)]` field, refusing it where it cannot be read.
fn parse_fields(input: &DeriveInput, event: &mut Event, errors: &mut Errors) {
    let (fields, place): (Vec<&syn::Field>, Option<&str>) = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => (named.named.iter().collect(), None),
            Fields::Unnamed(unnamed) => (unnamed.unnamed.iter().collect(), Some("a tuple struct")),
            Fields::Unit => (Vec::new(), None),
        },
        Data::Enum(e) => {
            for variant in &e.variants {
                for attr in variant.attrs.iter().filter(|a| a.path().is_ident(EVENT)) {
                    errors.spanned(
                        attr,
                        format!(
                            "`#[{EVENT}(...)]` is not accepted on an enum variant: \
                             put `#[{EVENT}({NAME} = \"...\", {VERSION} = N)]` on the enum"
                        ),
                    );
                }
            }
            (
                e.variants.iter().flat_map(|v| v.fields.iter()).collect(),
                Some("an enum"),
            )
        }
        Data::Union(u) => {
            errors.spanned(
                u.union_token,
                "an event must be a struct or an enum, not a union",
            );
            (Vec::new(), None)
        }
    };
    for field in fields {
        for attr in field.attrs.iter().filter(|a| a.path().is_ident(EVENT)) {
            let tokens = attr::arguments(attr, errors);
            let keys = attr::parse_list(tokens, errors, |input| {
                let lookahead = input.lookahead1();
                if lookahead.peek(kw::key) {
                    Ok(input.parse::<kw::key>()?.span)
                } else if input.peek(kw::name) || input.peek(kw::version) {
                    Err(input.error(format!(
                        "`{NAME}` and `{VERSION}` go on the type, not on a field; \
                         a field accepts only `#[{EVENT}({KEY})]`"
                    )))
                } else {
                    Err(attr::unknown(input, lookahead, "field attribute"))
                }
            });
            for span in keys {
                if let Some(place) = place {
                    errors.at(
                        span,
                        format!(
                            "`#[{EVENT}({KEY})]` is supported on a field of a struct with named \
                             fields only, not in {place}: write e.g. \
                             `struct ItemAdded {{ #[{EVENT}({KEY})] cart_id: CartId, ... }}`"
                        ),
                    );
                    continue;
                }
                let Some(member) = field.ident.clone() else {
                    continue;
                };
                match &event.key {
                    Some(first) => errors.at(
                        span,
                        format!(
                            "an event has one default key, and `#[{EVENT}({KEY})]` is already on \
                             `{}`: remove one (a subscription may pick another field with \
                             `#[on({KEY} = {member})]`)",
                            first.member
                        ),
                    ),
                    None => {
                        event.key = Some(KeyField {
                            member,
                            ty: field.ty.clone(),
                        })
                    }
                }
            }
        }
    }
}
