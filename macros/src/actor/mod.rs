//! `#[actor]` on an inherent `impl` block: parse → validate → codegen.

mod codegen;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote};

use crate::errors::Errors;

/// Expands `#[actor(attr)]` on `item`. The `impl` block is always emitted
/// (without the marker attributes), so one mistake does not hide the
/// actor's methods; the generated impls follow for every handler that
/// passed its checks, and a `compile_error!` for each mistake.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::new();
    let mut item: syn::ItemImpl = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            let span = item
                .clone()
                .into_iter()
                .next()
                .map_or_else(proc_macro2::Span::call_site, |t| t.span());
            errors.at(
                span,
                "`#[actor]` goes on the actor's inherent `impl` block: \
                 `#[actor] impl Cart { #[on] async fn item_added(&mut self, e: &ItemAdded) { ... } }`",
            );
            let errors = errors.into_compile_errors();
            return quote! { #item #errors };
        }
    };
    let options = parse::options(attr, &mut errors);
    let methods = parse::methods(&mut item, &mut errors);

    let generated = header_errors(&item, &mut errors).map(|message| {
        let mut actor = model::Actor {
            self_ty: (*item.self_ty).clone(),
            message,
            options,
            handlers: methods.handlers,
            started: methods.started,
            stopping: methods.stopping,
        };
        validate::validate(&mut actor, &mut errors);
        codegen::generate(&actor)
    });
    let errors = errors.into_compile_errors();
    quote! { #item #generated #errors }
}

/// Refuses trait impls and generic impls; returns the message enum's name.
fn header_errors(item: &syn::ItemImpl, errors: &mut Errors) -> Option<syn::Ident> {
    let mut ok = true;
    if let Some((_, path, _)) = &item.trait_ {
        errors.spanned(
            path,
            "`#[actor]` goes on the actor's inherent `impl` block (`impl Cart { ... }`), \
             not on a trait impl: it writes the `Actor` impl itself",
        );
        ok = false;
    }
    if !item.generics.params.is_empty() {
        errors.spanned(
            &item.generics,
            "`#[actor]` does not support generic actors: declare the actor for a concrete \
             type (e.g. `impl Cart { ... }`), or implement `Actor` by hand",
        );
        ok = false;
    }
    let ident = match &*item.self_ty {
        syn::Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| &s.ident),
        _ => None,
    };
    let Some(ident) = ident else {
        errors.spanned(
            item.self_ty.to_token_stream(),
            "`#[actor]` needs a named type: `impl Cart { ... }`",
        );
        return None;
    };
    ok.then(|| format_ident!("__{}Message", ident))
}
