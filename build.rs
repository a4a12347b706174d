// Embedded migrations and templates are read at compile time: rebuild when they change.
//
// The binary links XGBoost's shared library (libxgboost.so, built from source by the `xgb`
// crate). An rpath of $ORIGIN lets the binary find it beside itself, where
// `scripts/stage-xgboost` copies it; `cargo run` and `cargo test` find it without that.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN");
}
