//! Layer-2 announcement: the ARP (and, to come, NDP) codecs, pure; the responders and the
//! announcer on raw sockets are still to come.

pub mod arp;
