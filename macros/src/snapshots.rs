//! Expansion snapshots: runs the macros' `expand` functions on
//! representative inputs, pretty-prints the output, and compares it with
//! `tests/snapshots/<name>.rs`. A missing snapshot is written; with
//! `UPDATE_SNAPSHOTS=1` all are rewritten. Review their diffs like code.

use std::path::PathBuf;

use proc_macro2::TokenStream;
use quote::quote;

fn pretty(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        // `compile_error!` invocations are items too, so this only happens
        // if an expansion is not valid Rust at all.
        Err(e) => panic!("expansion does not parse as a file: {e}\n{tokens}"),
    }
}

fn check(name: &str, tokens: TokenStream) {
    let actual = pretty(tokens);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.rs"));
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v != "0");
    match std::fs::read_to_string(&path) {
        Ok(expected) if !update => assert!(
            expected == actual,
            "expansion of `{name}` differs from {}; rerun with UPDATE_SNAPSHOTS=1 and review \
             the diff.\n--- actual ---\n{actual}",
            path.display()
        ),
        _ => std::fs::write(&path, actual).unwrap(),
    }
}

#[test]
fn event_with_key() {
    check(
        "event_with_key",
        crate::event::expand(quote! {
            #[event(name = "shop.item_added", version = 1)]
            pub struct ItemAdded {
                #[event(key)]
                pub cart_id: u64,
                pub sku: String,
                pub qty: u32,
            }
        }),
    );
}

#[test]
fn event_enum_without_key() {
    check(
        "event_enum_without_key",
        crate::event::expand(quote! {
            #[event(name = "shop.payment", version = 2)]
            pub enum Payment {
                Authorized { order_id: u64 },
                Declined(String),
            }
        }),
    );
}

#[test]
fn event_with_errors() {
    check(
        "event_with_errors",
        crate::event::expand(quote! {
            #[event(name = "", version = 0, colour = "red")]
            pub struct Broken(#[event(key)] u64);
        }),
    );
}

#[test]
fn single_actor() {
    check(
        "single_actor",
        crate::actor::expand(
            quote! { mailbox = 64, overflow = Reject, restart = Transient, retries = 2 },
            quote! {
                impl Shipping {
                    #[on(publishes = [ParcelShipped])]
                    async fn order_placed(
                        &mut self,
                        e: &OrderPlaced,
                        cx: &mut Context<Self>,
                    ) -> Result<(), HandlerError> {
                        cx.publish(ParcelShipped { order_id: e.order_id }).await?;
                        Ok(())
                    }

                    #[on]
                    fn parcel_lost(&mut self, e: ParcelLost) {
                        self.lost.push(e);
                    }

                    #[reply]
                    fn shipped(&self, _q: &CountShipped) -> usize {
                        self.shipped
                    }

                    #[started]
                    async fn warm_up(&mut self, cx: &mut Context<Self>) -> Result<(), String> {
                        Ok(())
                    }

                    #[stopping]
                    async fn flush(&mut self) {}

                    fn helper(&self) -> usize {
                        self.shipped
                    }
                }
            },
        ),
    );
}

#[test]
fn entity_actor() {
    check(
        "entity_actor",
        crate::actor::expand(
            quote! { entity, mailbox = 256, passivate_after_secs = 60 },
            quote! {
                impl Cart {
                    #[on]
                    async fn item_added(&mut self, e: &ItemAdded) {
                        self.lines += e.qty;
                    }

                    #[on(key = cart_id)]
                    async fn checkout(&mut self, e: &CheckoutRequested, cx: &mut Context<Self>) {}

                    #[reply]
                    async fn view(&self, q: GetCart) -> CartView {
                        CartView { lines: self.lines }
                    }
                }
            },
        ),
    );
}

#[test]
fn group_actor() {
    check(
        "group_actor",
        crate::actor::expand(
            quote! { group = 4 },
            quote! {
                impl Mailer {
                    #[on]
                    fn order_placed(&mut self, e: &OrderPlaced) {}
                }
            },
        ),
    );
}

#[test]
fn actor_with_errors() {
    check(
        "actor_with_errors",
        crate::actor::expand(
            quote! { mailbox = 0, colour = 3, entity, group = 2 },
            quote! {
                impl Broken {
                    #[on]
                    fn two_events(&mut self, a: &A, b: &B) {}

                    #[on]
                    fn fine(&mut self, a: &A) {}

                    #[reply]
                    fn no_reply(&self, q: &Q) {}
                }
            },
        ),
    );
}
