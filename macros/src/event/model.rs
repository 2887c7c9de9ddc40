//! What `#[derive(Event)]` knows of an event type once its attributes are read.

use proc_macro2::Span;

/// An event type.
pub(crate) struct Event {
    /// The type's name.
    pub(crate) ident: syn::Ident,
    /// Its generics (refused by validation).
    pub(crate) generics: syn::Generics,
    /// `name = "..."`, with the literal's span.
    pub(crate) name: Option<(String, Span)>,
    /// `version = N`.
    pub(crate) version: Option<u32>,
    /// The field marked `#[event(key)]`.
    pub(crate) key: Option<KeyField>,
    /// The first `#[event]` attribute, where "missing key" errors point;
    /// `None` when the type has none.
    pub(crate) attr_span: Option<Span>,
}

/// The field that is the event's default routing key.
pub(crate) struct KeyField {
    /// The field's name.
    pub(crate) member: syn::Ident,
    /// The field's type (errors about `From<T> for Key` point here).
    pub(crate) ty: syn::Type,
}
