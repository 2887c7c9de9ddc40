#[automatically_derived]
impl ::mercato::__private::Event for ItemAdded {
    const NAME: &'static str = "shop.item_added";
    const VERSION: u32 = 1u32;
    fn key(&self) -> ::mercato::__private::Option<::mercato::__private::Key> {
        ::mercato::__private::Some(
            <::mercato::__private::Key as ::mercato::__private::From<
                u64,
            >>::from(::mercato::__private::Clone::clone(&self.cart_id)),
        )
    }
}
