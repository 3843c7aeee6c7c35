mod config;
mod money;
mod pricing;
mod transcript;
fn main() {}
