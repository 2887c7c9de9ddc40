::core::compile_error! {
    "unknown `#[event]` key `colour`: expected `name` or `version`"
}
::core::compile_error! {
    "the wire name cannot be empty: write e.g. `name = \"shop.item_added\"`"
}
::core::compile_error! {
    "must be at least 1, e.g. `version = 1`"
}
::core::compile_error! {
    "`#[event(key)]` is supported on a field of a struct with named fields only, not in a tuple struct: write e.g. `struct ItemAdded { #[event(key)] cart_id: CartId, ... }`"
}
impl ::mercato::__private::Event for Broken {
    const NAME: &'static str = "";
    const VERSION: u32 = 0;
}
