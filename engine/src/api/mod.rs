//! The network faces: thin translations of gRPC and HTTP requests onto the
//! [`Engine`](crate::Engine), errors through the one code table
//! ([`Error::codes`](crate::Error::codes)).

pub mod gate;
pub mod grpc;
pub mod http;
