//! Writes the `Event` impl.

use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::Event;

/// `impl ::mercato::__private::Event for T`.
pub(crate) fn event_impl(event: &Event) -> proc_macro2::TokenStream {
    let ident = &event.ident;
    let name = event
        .name
        .as_ref()
        .map(|(n, _)| n.as_str())
        .unwrap_or_default();
    let version = event.version.unwrap_or_default();
    let key = event.key.as_ref().map(|key| {
        let member = &key.member;
        let ty = &key.ty;
        // Spanned at the field's type: a missing `From<T> for Key` is
        // reported there.
        let from = quote_spanned! {ty.span()=>
            <::mercato::__private::Key as ::mercato::__private::From<#ty>>::from
        };
        quote! {
            fn key(&self) -> ::mercato::__private::Option<::mercato::__private::Key> {
                ::mercato::__private::Some(#from(::mercato::__private::Clone::clone(&self.#member)))
            }
        }
    });
    quote! {
        #[automatically_derived]
        impl ::mercato::__private::Event for #ident {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            #key
        }
    }
}

/// A stand-in impl for a refused derive, so that the type's uses as an event
/// do not fail too; none for a generic type, which it could not fit.
pub(crate) fn stub(event: &Event) -> proc_macro2::TokenStream {
    if !event.generics.params.is_empty() {
        return proc_macro2::TokenStream::new();
    }
    let ident = &event.ident;
    quote! {
        impl ::mercato::__private::Event for #ident {
            const NAME: &'static str = "";
            const VERSION: u32 = 0;
        }
    }
}
