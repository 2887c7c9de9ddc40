//! Checks across the options and handlers of an actor.

use quote::ToTokens;

use super::model::{Actor, Deployment, Kind};
use crate::attr::{ASK_IN_PLACE, BACKOFF_MAX_MS, BACKOFF_MS, ENTITY, KEY, PASSIVATE_AFTER_SECS};
use crate::errors::Errors;

/// Records what does not fit together, and drops the handlers that would
/// make the generated code fail a second time.
pub(crate) fn validate(actor: &mut Actor, errors: &mut Errors) {
    if let Some((_, span)) = actor.options.passivate_after_secs {
        if actor.options.deployment != Deployment::Entity {
            errors.at(
                span,
                format!(
                    "`{PASSIVATE_AFTER_SECS}` applies to entity actors only: add `{ENTITY}` to \
                     `#[actor(...)]`, or remove it"
                ),
            );
        }
    }

    if let Some((_, span)) = actor.options.ask_in_place {
        if actor.options.deployment == Deployment::Entity {
            errors.at(
                span,
                format!(
                    "`{ASK_IN_PLACE}` is about answering `ask`, and an entity is not asked (events \
                     reach it by key): remove it"
                ),
            );
        }
    }

    // Checked here when both are written; otherwise at spawn, against the
    // configured defaults (`supervision.backoff.max`).
    if let (Some((initial, _)), Some((max, span))) =
        (actor.options.backoff_ms, actor.options.backoff_max_ms)
    {
        if max < initial {
            errors.at(
                span,
                format!(
                    "`{BACKOFF_MAX_MS} = {max}` is less than the first wait ({initial} ms): the \
                     longest wait must be at least `{BACKOFF_MS}`"
                ),
            );
        }
    }

    let mut kept: Vec<super::model::Handler> = Vec::new();
    for handler in std::mem::take(&mut actor.handlers) {
        let event = handler.event.to_token_stream().to_string();
        if let Some(first) = kept
            .iter()
            .find(|h| h.kind == handler.kind && h.event.to_token_stream().to_string() == event)
        {
            let (attr, what) = match handler.kind {
                Kind::On => ("on", "handles"),
                Kind::Reply => ("reply", "answers"),
            };
            errors.spanned(
                &handler.event,
                format!(
                    "`{}` already {what} `{event}`: an actor has one `#[{attr}]` handler per \
                     event type; merge the two",
                    first.method
                ),
            );
            continue;
        }
        if let Some(key) = &handler.key {
            if actor.options.deployment != Deployment::Entity {
                errors.spanned(
                    key,
                    format!(
                        "`#[on({KEY} = ...)]` picks the entity an event goes to: add `{ENTITY}` \
                         to `#[actor(...)]`, or remove `{KEY}`"
                    ),
                );
            }
        }
        kept.push(handler);
    }
    actor.handlers = kept;
}
