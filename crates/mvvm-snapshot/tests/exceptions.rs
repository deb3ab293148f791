//! The exceptions section: `exnref` values name saved exceptions by index,
//! and a reader refuses any index that names none, any exception that
//! holds itself, and more exceptions than its limits allow.

mod common;

use common::{parts, small_memory, temp_dir};
use mvvm_snapshot::{
    ExceptionRecord, ReadLimits, SnapshotError, SnapshotParts, WasmValue, exception_creation_order,
    open_file, read, read_with_limits, write, write_file_atomic,
};

fn bytes_of(p: &SnapshotParts<'_>) -> Vec<u8> {
    let mut bytes = Vec::new();
    write(&mut bytes, p).expect("write");
    bytes
}

/// `Corrupt` whose message contains every one of `words`.
fn assert_corrupt(r: Result<mvvm_snapshot::Snapshot, SnapshotError>, words: &[&str]) {
    match r {
        Err(SnapshotError::Corrupt { what }) => {
            for w in words {
                assert!(what.contains(w), "{what:?} lacks {w:?}");
            }
        }
        other => panic!("expected Corrupt with {words:?}, got {other:?}"),
    }
}

#[test]
fn exceptions_and_their_references_round_trip() {
    let mem = small_memory();
    let p = parts(&mem);
    let snap = read(&bytes_of(&p)[..]).expect("read");
    assert_eq!(snap.exceptions, common::exceptions());
    assert_eq!(snap.frames, p.frames);
    assert_eq!(snap.globals[2], WasmValue::ExnRef(Some(1)));
    assert_eq!(
        snap.tables[3],
        vec![WasmValue::ExnRef(None), WasmValue::ExnRef(Some(2))]
    );
    // The same through a file.
    let dir = temp_dir("exn-file");
    let path = dir.join("snap");
    write_file_atomic(&path, &p).unwrap();
    let snap = open_file(&path).unwrap();
    assert_eq!(snap.exceptions, p.exceptions);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_exceptions_is_an_empty_section() {
    let p = SnapshotParts {
        frames: vec![],
        globals: vec![],
        tables: vec![],
        exceptions: vec![],
        ..parts(&[])
    };
    let snap = read(&bytes_of(&p)[..]).unwrap();
    assert!(snap.exceptions.is_empty());
}

#[test]
fn an_index_past_the_list_is_refused_wherever_it_is() {
    let mem = small_memory();
    let n = common::exceptions().len() as u32;
    type Edit = Box<dyn Fn(&mut SnapshotParts<'_>)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(move |p| p.frames[1].locals[0] = WasmValue::ExnRef(Some(n))),
            "frame 1 local 0",
        ),
        (
            Box::new(move |p| p.frames[0].stack[1] = WasmValue::ExnRef(Some(u32::MAX))),
            "frame 0 stack value 1",
        ),
        (
            Box::new(move |p| p.globals[0] = WasmValue::ExnRef(Some(n))),
            "global 0",
        ),
        (
            Box::new(move |p| p.tables[3][0] = WasmValue::ExnRef(Some(n + 7))),
            "table 3 element 0",
        ),
        (
            Box::new(move |p| p.exceptions[2].payload[1] = WasmValue::ExnRef(Some(n))),
            "exception 2 payload value 1",
        ),
        // No exceptions at all, a reference left.
        (Box::new(|p| p.exceptions.clear()), "0 exceptions"),
    ];
    for (edit, place) in cases {
        let mut p = parts(&mem);
        edit(&mut p);
        // The writer writes what it is given (hostile producers exist; the
        // reader is the one that checks).
        let bytes = bytes_of(&p);
        assert_corrupt(read(&bytes[..]), &[place, "refers to exception"]);
        let dir = temp_dir("exn-range");
        let path = dir.join("snap");
        std::fs::write(&path, &bytes).unwrap();
        assert_corrupt(open_file(&path), &[place]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn an_exception_that_holds_itself_is_refused() {
    let exn = |tag, refs: &[u32]| ExceptionRecord {
        tag,
        payload: refs.iter().map(|&r| WasmValue::ExnRef(Some(r))).collect(),
    };
    for (list, who) in [
        (vec![exn(0, &[0])], "exception 0"),
        (
            vec![exn(0, &[1]), exn(1, &[2]), exn(2, &[0])],
            "holds itself",
        ),
        (
            vec![exn(0, &[]), exn(0, &[0, 2]), exn(0, &[3]), exn(0, &[2])],
            "exception 2",
        ),
    ] {
        let p = SnapshotParts {
            frames: vec![],
            globals: vec![],
            tables: vec![],
            exceptions: list.clone(),
            ..parts(&[])
        };
        assert_corrupt(read(&bytes_of(&p)[..]), &[who, "holds itself"]);
        assert!(exception_creation_order(&list).is_err());
    }
}

#[test]
fn creation_order_puts_held_exceptions_first() {
    let exn = |refs: &[u32]| ExceptionRecord {
        tag: 0,
        payload: refs
            .iter()
            .map(|&r| WasmValue::ExnRef(Some(r)))
            .chain([WasmValue::I32(1), WasmValue::ExnRef(None)])
            .collect(),
    };
    // A diamond and a lone one: 0 -> {1, 2}, 1 -> 3, 2 -> 3.
    let list = vec![exn(&[1, 2]), exn(&[3]), exn(&[3]), exn(&[]), exn(&[])];
    let order = exception_creation_order(&list).unwrap();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, vec![0, 1, 2, 3, 4], "each once: {order:?}");
    let pos = |e: u32| order.iter().position(|&x| x == e).unwrap();
    for (e, rec) in list.iter().enumerate() {
        for v in &rec.payload {
            if let WasmValue::ExnRef(Some(r)) = v {
                assert!(pos(*r) < pos(e as u32), "{r} before {e}: {order:?}");
            }
        }
    }
    // A chain far longer than a recursive walk could take on a thread's
    // stack, in both directions; read back whole.
    const N: u32 = 200_000;
    let down: Vec<_> = (0..N)
        .map(|i| if i + 1 < N { exn(&[i + 1]) } else { exn(&[]) })
        .collect();
    let order = exception_creation_order(&down).unwrap();
    assert_eq!(order, (0..N).rev().collect::<Vec<_>>());
    let up: Vec<_> = (0..N)
        .map(|i| if i > 0 { exn(&[i - 1]) } else { exn(&[]) })
        .collect();
    assert_eq!(
        exception_creation_order(&up).unwrap(),
        (0..N).collect::<Vec<_>>()
    );
    let p = SnapshotParts {
        frames: vec![],
        globals: vec![WasmValue::ExnRef(Some(0))],
        tables: vec![],
        exceptions: down.clone(),
        ..parts(&[])
    };
    assert_eq!(read(&bytes_of(&p)[..]).unwrap().exceptions, down);
}

#[test]
fn exception_counts_above_the_receivers_limits_are_refused() {
    let mem = small_memory();
    let p = parts(&mem);
    let bytes = bytes_of(&p);
    let values: u64 = p.exceptions.iter().map(|e| e.payload.len() as u64).sum();
    let count = p.exceptions.len() as u64;
    // Exactly the counts: accepted.
    let exact = ReadLimits {
        max_exceptions: count,
        max_exception_values: values,
        ..ReadLimits::default()
    };
    read_with_limits(&bytes[..], &exact).expect("within the limits");
    // One fewer exception, with room in bytes for it (more values): the
    // count is what is refused, after decoding.
    let fewer = ReadLimits {
        max_exceptions: count - 1,
        max_exception_values: values + 10,
        ..ReadLimits::default()
    };
    let err = read_with_limits(&bytes[..], &fewer).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::LimitExceeded { what, found, limit }
            if what.contains("number of exceptions") && *found == count && *limit == count - 1),
        "{err}"
    );
    let fewer_values = ReadLimits {
        max_exceptions: count + 10,
        max_exception_values: values - 1,
        ..ReadLimits::default()
    };
    let err = read_with_limits(&bytes[..], &fewer_values).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::LimitExceeded { what, found, .. }
            if what.contains("payload values") && *found == values),
        "{err}"
    );
    // No exception allowed at all: the section's length alone refuses it,
    // before it is read.
    let none = ReadLimits {
        max_exceptions: 0,
        max_exception_values: 0,
        ..ReadLimits::default()
    };
    let err = read_with_limits(&bytes[..], &none).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::LimitExceeded { what, .. } if what.contains("exceptions section")),
        "{err}"
    );
    // ... while a snapshot without exceptions passes those limits.
    let plain = SnapshotParts {
        frames: vec![],
        globals: vec![],
        tables: vec![],
        exceptions: vec![],
        ..parts(&mem)
    };
    read_with_limits(&bytes_of(&plain)[..], &none).expect("no exceptions");
}

#[test]
fn a_damaged_exceptions_section_is_an_error() {
    // Every byte of the exceptions section flipped: caught by its crc32
    // (the exhaustive tests in damage.rs flip every byte of the fixture,
    // which has exceptions, too; here the section is large enough to be
    // told apart).
    let big: Vec<ExceptionRecord> = (0..64u32)
        .map(|i| ExceptionRecord {
            tag: i % 3,
            payload: vec![WasmValue::I64(u64::from(i) * 0x0101_0101); 4],
        })
        .collect();
    let p = SnapshotParts {
        frames: vec![],
        globals: vec![],
        tables: vec![],
        exceptions: big,
        ..parts(&[])
    };
    let mut bytes = bytes_of(&p);
    let original = read(&bytes[..]).unwrap();
    assert_eq!(original.exceptions, p.exceptions);
    // The section is the one with 64 records: find its first record (tag
    // 0, 4 values) by its encoded count (64 as a u64).
    let at = bytes
        .windows(8)
        .position(|w| w == 64u64.to_le_bytes())
        .expect("the section's count");
    for i in at..at + 200 {
        bytes[i] ^= 0x20;
        let r = read(&bytes[..]);
        bytes[i] ^= 0x20;
        assert!(
            matches!(r, Err(SnapshotError::Checksum { ref section }) if section.contains("exceptions")),
            "byte {i}: {r:?}"
        );
    }
}
