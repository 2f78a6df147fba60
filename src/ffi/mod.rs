//! Foreign interfaces over the core: the C ABI (`c`) and, later, the JNI bridge.
//! These layers only convert types, map errors and guard against misuse.

pub mod c;
mod handles;
pub mod jni;
