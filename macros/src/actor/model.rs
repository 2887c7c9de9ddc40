//! What `#[actor]` knows of an actor once its options and methods are read.

use proc_macro2::Span;

/// A declared actor: its `impl` block's type, options and handlers.
pub(crate) struct Actor {
    /// The type the `impl` block is for.
    pub(crate) self_ty: syn::Type,
    /// The name of the generated message enum, e.g. `__CartMessage`.
    pub(crate) message: syn::Ident,
    /// The `#[actor(...)]` options.
    pub(crate) options: Options,
    /// The `#[on]` and `#[reply]` methods, in source order.
    pub(crate) handlers: Vec<Handler>,
    /// The `#[started]` method.
    pub(crate) started: Option<Hook>,
    /// The `#[stopping]` method.
    pub(crate) stopping: Option<Hook>,
}

/// The `#[actor(...)]` options; `None` keeps the system's default.
#[derive(Default)]
pub(crate) struct Options {
    /// `mailbox = N`.
    pub(crate) mailbox: Option<usize>,
    /// `overflow = Policy`.
    pub(crate) overflow: Option<syn::Ident>,
    /// `restart = Policy`.
    pub(crate) restart: Option<syn::Ident>,
    /// `retries = N`.
    pub(crate) retries: Option<u32>,
    /// `entity` or `group = N`.
    pub(crate) deployment: Deployment,
    /// Where `entity` or `group` was written.
    pub(crate) deployment_span: Option<Span>,
    /// `passivate_after_secs = N`.
    pub(crate) passivate_after_secs: Option<(u64, Span)>,
    /// `backoff_ms = N`: the first wait, in milliseconds.
    pub(crate) backoff_ms: Option<(u64, Span)>,
    /// `backoff_max_ms = N`: the longest wait, in milliseconds.
    pub(crate) backoff_max_ms: Option<(u64, Span)>,
    /// `ask_in_place = bool`.
    pub(crate) ask_in_place: Option<(bool, Span)>,
}

/// How the actor is deployed.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub(crate) enum Deployment {
    /// One actor (the default).
    #[default]
    Single,
    /// One instance per key.
    Entity,
    /// A pool of this many members.
    Group(usize),
}

/// `#[on]` or `#[reply]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// Handles a told or published event.
    On,
    /// Answers an `ask`.
    Reply,
}

/// A parameter of a handler after `self`, in order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Arg {
    /// The event (or query).
    Event,
    /// `&mut Context<Self>`.
    Context,
}

/// One `#[on]` or `#[reply]` method.
pub(crate) struct Handler {
    /// Which attribute marked it.
    pub(crate) kind: Kind,
    /// The method's name.
    pub(crate) method: syn::Ident,
    /// Whether it is an `async fn`.
    pub(crate) is_async: bool,
    /// Its parameters after `self`.
    pub(crate) args: Vec<Arg>,
    /// The event type `E` (without the `&`).
    pub(crate) event: syn::Type,
    /// Whether the event is taken as `&E` (else by value, cloned).
    pub(crate) by_ref: bool,
    /// The return type; `None` for `()`.
    pub(crate) output: Option<syn::Type>,
    /// Where the return type, or the signature when there is none, is.
    pub(crate) output_span: Span,
    /// `#[on(key = field)]`.
    pub(crate) key: Option<syn::Ident>,
    /// `#[on(publishes = [A, B])]`.
    pub(crate) publishes: Vec<syn::Type>,
    /// The message enum's variant for it.
    pub(crate) variant: syn::Ident,
}

/// A `#[started]` or `#[stopping]` method.
pub(crate) struct Hook {
    /// The method's name.
    pub(crate) method: syn::Ident,
    /// Whether it is an `async fn`.
    pub(crate) is_async: bool,
    /// Whether it takes `&mut Context<Self>`.
    pub(crate) context: bool,
    /// Where the return type, or the signature when there is none, is.
    pub(crate) output_span: Span,
}
