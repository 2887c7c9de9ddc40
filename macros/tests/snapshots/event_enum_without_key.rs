#[automatically_derived]
impl ::mercato::__private::Event for Payment {
    const NAME: &'static str = "shop.payment";
    const VERSION: u32 = 2u32;
}
