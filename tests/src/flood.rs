//! Raw frames out of an interface (AF_PACKET): SYN floods from one
//! source over many ports, which no socket API sends. Call [`send`] on a
//! thread inside the namespace that holds the interface; the frames carry
//! the real MAC addresses of the link, so what XDP passes reaches the
//! receiver's TCP stack as any SYN would.

use std::{ffi::CString, io};

use crate::{
    netns::Netns,
    packet::{Frame, TCP_SYN},
};

/// The MAC address of `ifname` in `ns`.
pub fn mac_of(ns: &Netns, ifname: &str) -> [u8; 6] {
    let out = ns.ip_output(&["-o", "link", "show", ifname]);
    let hex = out
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC for {ifname} in: {out}"));
    let mut mac = [0u8; 6];
    for (b, part) in mac.iter_mut().zip(hex.split(':')) {
        *b = u8::from_str_radix(part, 16).expect("a MAC byte");
    }
    mac
}

/// `count` SYNs from `src` (ports 1024 up) to `dst:dst_port`, addressed
/// from `src_mac` to `dst_mac`.
pub fn syns(
    src: &str,
    dst: &str,
    dst_port: u16,
    count: u16,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut f = Frame::tcp(src, 1024 + i, dst, dst_port, TCP_SYN).bytes();
            f[..6].copy_from_slice(&dst_mac);
            f[6..12].copy_from_slice(&src_mac);
            f
        })
        .collect()
}

/// Sends every frame out of `ifname` (of the calling thread's network
/// namespace); how many the kernel took.
pub fn send(ifname: &str, frames: &[Vec<u8>]) -> io::Result<usize> {
    let name = CString::new(ifname).expect("an interface name");
    // SAFETY: plain libc calls on a socket this function owns and closes;
    // the address structure is zeroed and filled as packet(7) says.
    unsafe {
        let index = libc::if_nametoindex(name.as_ptr());
        if index == 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = index as i32;
        addr.sll_halen = 6;
        let mut sent = 0;
        for f in frames {
            addr.sll_addr[..6].copy_from_slice(&f[..6]);
            let n = libc::sendto(
                fd,
                f.as_ptr().cast(),
                f.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            if n == f.len() as isize {
                sent += 1;
            }
        }
        libc::close(fd);
        Ok(sent)
    }
}
