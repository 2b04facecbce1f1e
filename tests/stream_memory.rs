//! What a stream costs in memory, over the wire: entries with their node's field names share
//! them (as Redis's SAMEFIELDS entries do), so neither XADD with long field names nor a
//! hostile RESTORE payload (a long master field over many SAMEFIELDS entries) makes the
//! server hold a copy of the names per entry.

mod common;

use common::{Conn, Server};
use strata::persist::rdb::encode::{write_len, write_string, EncodeOptions};
use strata::persist::rdb::{crc64, listpack, RDB_VERSION};

fn used_memory(conn: &mut Conn) -> u64 {
    let reply = conn.cmd("INFO memory");
    let text = String::from_utf8_lossy(&reply);
    text.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("INFO memory has used_memory")
}

/// A DUMP payload built by hand, as a hostile client would: one node whose master field is
/// `name`, then `entries` SAMEFIELDS entries (IDs 1-0, 2-0, ...) of one one-byte value each.
fn hostile_payload(name: &[u8], entries: u64) -> Vec<u8> {
    const FLAG_SAME_FIELDS: i64 = 2;
    let mut node = listpack::Writer::new();
    // The master entry: live count, deleted count, one field, its name, the terminator.
    for count in [entries as i64, 0, 1] {
        node.push_int(count);
    }
    node.push(name);
    node.push_int(0);
    for delta in 0..entries as i64 {
        // Flags, ms and seq deltas, the value, the lp-count (the entry's other elements).
        for element in [FLAG_SAME_FIELDS, delta, 0] {
            node.push_int(element);
        }
        node.push(&[b'a' + (delta % 26) as u8]);
        node.push_int(4);
    }
    let options = EncodeOptions::DEFAULT;
    let mut out = vec![19u8];
    write_len(&mut out, 1);
    let mut key = 1u64.to_be_bytes().to_vec();
    key.extend_from_slice(&0u64.to_be_bytes());
    write_string(&mut out, &key, &options);
    write_string(&mut out, &node.finish(), &options);
    // Length, last ID, first ID, max deleted ID, entries added, no groups.
    for number in [entries, entries, 0, 1, 0, 0, 0, entries, 0] {
        write_len(&mut out, number);
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A 60 KB master field and 20,000 SAMEFIELDS entries: a payload of about 120 KB (LZF)
/// that used to decode into 1.2 GB of copied names.
#[test]
fn restoring_a_long_master_field_over_many_entries_stays_small() {
    let entries = 20_000u64;
    let payload = hostile_payload(&vec![b'n'; 60_000], entries);
    let server = Server::strata(&[]);
    let mut conn = server.connect();
    let before = used_memory(&mut conn);
    let reply = conn.command(&[b"RESTORE".as_slice(), b"s", b"0", &payload]);
    assert_eq!(reply, b"+OK\r\n");
    let grown = used_memory(&mut conn).saturating_sub(before);
    assert_eq!(conn.cmd("XLEN s"), format!(":{entries}\r\n").into_bytes());
    // About 60 bytes an entry and the name once; 1.2 GB when every entry copied the name.
    assert!(
        grown < 8 << 20,
        "RESTORE of a {} byte payload grew used_memory by {grown} bytes",
        payload.len()
    );
    // Written back as it was read: SAMEFIELDS, byte for byte.
    let dumped = conn.command(&[b"DUMP".as_slice(), b"s"]);
    let header = format!("${}\r\n", payload.len()).into_bytes();
    assert_eq!(&dumped[..header.len()], header.as_slice());
    assert_eq!(&dumped[header.len()..dumped.len() - 2], payload.as_slice());
}

/// Five fields with 50-byte names: about 100 bytes an entry (Redis 7.0: about 40), where
/// copying the names into every entry cost about 350.
#[test]
fn entries_with_long_field_names_cost_their_values() {
    let names: Vec<Vec<u8>> = (0..5)
        .map(|index| format!("{:x<50}", format!("field{index}_")).into_bytes())
        .collect();
    let server = Server::strata(&[]);
    let mut conn = server.connect();
    let before = used_memory(&mut conn);
    let entries = 20_000;
    for batch in 0..entries / 1000 {
        for index in 0..1000 {
            let number = batch * 1000 + index;
            let values: Vec<Vec<u8>> = (0..5)
                .map(|field| (number * 5 + field).to_string().into_bytes())
                .collect();
            let mut args: Vec<&[u8]> = vec![b"XADD", b"s", b"*"];
            for (name, value) in names.iter().zip(&values) {
                args.push(name);
                args.push(value);
            }
            conn.send_command(&args);
        }
        for _ in 0..1000 {
            let reply = conn.read_reply().expect("an XADD reply");
            assert_eq!(reply[0], b'$', "{}", String::from_utf8_lossy(&reply));
        }
    }
    let per_entry = used_memory(&mut conn).saturating_sub(before) / entries;
    assert!(per_entry < 160, "{per_entry} bytes an entry");
}
