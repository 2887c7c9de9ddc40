//! Checks that need the whole event: required keys, generics.

use quote::ToTokens;

use super::model::Event;
use crate::attr::{EVENT, NAME, VERSION};
use crate::errors::Errors;

/// Records what is missing or refused in `event`.
pub(crate) fn validate(event: &Event, errors: &mut Errors) {
    let example_name = snake_case(&event.ident.to_string());
    match event.attr_span {
        None => errors.at(
            event.ident.span(),
            format!(
                "`#[derive(Event)]` needs the wire name and version: add \
                 `#[{EVENT}({NAME} = \"{example_name}\", {VERSION} = 1)]` to `{}`",
                event.ident
            ),
        ),
        Some(span) => {
            if event.name.is_none() {
                errors.at(
                    span,
                    format!(
                        "missing `{NAME}`: the event's stable wire name, e.g. \
                         `#[{EVENT}({NAME} = \"{example_name}\", {VERSION} = 1)]`"
                    ),
                );
            }
            if event.version.is_none() {
                errors.at(
                    span,
                    format!(
                        "missing `{VERSION}`: the payload's schema version, starting at 1, \
                         e.g. `#[{EVENT}({NAME} = \"{example_name}\", {VERSION} = 1)]`"
                    ),
                );
            }
        }
    }
    if !event.generics.params.is_empty() {
        errors.spanned(
            event.generics.to_token_stream(),
            "an event cannot be generic: its wire name and version name one schema; \
             declare a concrete type per event (e.g. `struct ItemAdded { ... }`)",
        );
    }
}

/// `ItemAdded` → `item_added`, `HTTPRequestSent` → `http_request_sent`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()),
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_splits_words_and_acronyms() {
        assert_eq!(snake_case("ItemAdded"), "item_added");
        assert_eq!(snake_case("HTTPRequestSent"), "http_request_sent");
        assert_eq!(snake_case("Order2Placed"), "order2_placed");
        assert_eq!(snake_case("Ping"), "ping");
    }
}
