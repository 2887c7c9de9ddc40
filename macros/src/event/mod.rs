//! `#[derive(Event)]`: parse → validate → codegen.

mod codegen;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::errors::Errors;

/// Expands `#[derive(Event)]` on `input`: the `Event` impl, or
/// `compile_error!`s (plus a stub impl, so that uses of the type as an event
/// do not fail as well).
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = Errors::new();
    let model = parse::parse(&input, &mut errors);
    validate::validate(&model, &mut errors);
    if errors.is_empty() {
        codegen::event_impl(&model)
    } else {
        let stub = codegen::stub(&model);
        let errors = errors.into_compile_errors();
        quote::quote! { #errors #stub }
    }
}
