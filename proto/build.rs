//! Compiles `fanout/v1/fanout.proto` with the pure-Rust `protox`, so building
//! needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=fanout/v1/fanout.proto");
    let fds = protox::compile(["fanout/v1/fanout.proto"], ["."])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
