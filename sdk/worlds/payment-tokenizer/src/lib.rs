//! Bindings for the `outpost:plugins/payment-tokenizer@0.1.0` world. Use them through
//! `outpost_sdk::payment_tokenizer`.

outpost_sdk_core::world_bindings!(
    "outpost:plugins/payment-tokenizer@0.1.0",
    "export_payment_tokenizer",
    "outpost_sdk::payment_tokenizer",
    plugins0_1_0::tokenizer as Tokenizer
);
