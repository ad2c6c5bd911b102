//! Build-time steps of the tcpvs package; each lives in a file of its own
//! under build/.

#[path = "build/third_party_tools.rs"]
mod third_party_tools;

fn main() {
    third_party_tools::emit();
}
