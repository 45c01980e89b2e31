//! Trace files: both formats, optional columns, and one-line errors that name the line.

use vramplan_sim::{parse_trace, SharedPrefix, SimError, TraceFormat};

#[test]
fn csv_with_optional_columns_and_unsorted_rows() {
    let csv = "arrival_s,prompt_tokens,output_tokens,n,beam_width,prefix_id,prefix_tokens\n\
               # a comment\n\
               1.5,100,20,,,,\n\
               0.5,10,5,4,,fewshot,8\n\
               1.0,30,7,,2,fewshot,8\n";
    let r = parse_trace(csv, TraceFormat::Csv, "t.csv").unwrap();
    // Sorted by arrival.
    assert_eq!(
        r.iter().map(|x| x.arrival_s).collect::<Vec<_>>(),
        vec![0.5, 1.0, 1.5]
    );
    assert_eq!(r[0].parallel_samples, 4);
    assert_eq!(r[1].beam_width, 2);
    assert_eq!(r[0].prefix, Some(SharedPrefix { id: 0, tokens: 8 }));
    assert_eq!(r[1].prefix, r[0].prefix);
    assert_eq!(r[2].prefix, None);
    assert_eq!((r[2].parallel_samples, r[2].beam_width), (1, 1));
}

#[test]
fn jsonl_accepts_numeric_prefix_ids() {
    let jsonl = "{\"arrival_s\": 0, \"prompt_tokens\": 12, \"output_tokens\": 3, \"prefix_id\": 9, \"prefix_tokens\": 4}\n\
                 \n\
                 {\"arrival\": 0.25, \"prompt\": 7, \"output\": 2, \"n\": 2}\n";
    let r = parse_trace(jsonl, TraceFormat::Jsonl, "t.jsonl").unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].prefix, Some(SharedPrefix { id: 0, tokens: 4 }));
    assert_eq!(r[1].parallel_samples, 2);
}

fn err(text: &str, format: TraceFormat) -> String {
    let name = if format == TraceFormat::Csv {
        "t.csv"
    } else {
        "t.jsonl"
    };
    let e = parse_trace(text, format, name).unwrap_err();
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

#[test]
fn bad_rows_name_their_line() {
    let header = "arrival_s,prompt_tokens,output_tokens\n";
    assert_eq!(
        err(&format!("{header}0,10,5\n1,ten,5\n"), TraceFormat::Csv),
        "t.csv line 3: prompt_tokens `ten`: invalid digit found in string"
    );
    assert_eq!(
        err(&format!("{header}0,10,0\n"), TraceFormat::Csv),
        "t.csv line 2: output_tokens must be >= 1"
    );
    assert_eq!(
        err(&format!("{header}-1,10,5\n"), TraceFormat::Csv),
        "t.csv line 2: arrival_s must be a number of seconds from 0 to 1e9, got -1"
    );
    // 1e308 s made every memory share NaN ("free NaN%"): refused with its bound.
    assert_eq!(
        err(&format!("{header}0,10,5\n1e308,10,5\n"), TraceFormat::Csv),
        "t.csv line 3: arrival_s must be a number of seconds from 0 to 1e9, got 1e308"
    );
    assert_eq!(
        err("arrival_s,prompt_tokens\n0,10\n", TraceFormat::Csv),
        "t.csv line 2: missing output_tokens"
    );
    assert_eq!(
        err("arrival_s,prompt_tokens,colour\n", TraceFormat::Csv),
        "t.csv line 1: unknown column `colour`"
    );
    assert_eq!(
        err(
            "arrival_s,prompt_tokens,output_tokens,n,beam_width\n0,10,5,2,2\n",
            TraceFormat::Csv
        ),
        "t.csv line 2: a request uses either parallel samples or beam search, not both"
    );
    assert_eq!(
        err(
            "arrival_s,prompt_tokens,output_tokens,prefix_id,prefix_tokens\n0,10,5,a,4\n0,10,5,a,6\n",
            TraceFormat::Csv
        ),
        "t.csv line 3: prefix `a` has 6 tokens here but 4 on an earlier row"
    );
    assert_eq!(
        err(
            "arrival_s,prompt_tokens,output_tokens,prefix_id,prefix_tokens\n0,10,5,a,11\n",
            TraceFormat::Csv
        ),
        "t.csv line 2: prefix_tokens must be in 1..=prompt_tokens (10), got 11"
    );
    assert_eq!(
        err("{\"arrival_s\": 0, \"prompt_tokens\": 1, \"output_tokens\": 1}\n{\"arrival_s\": 0, \"prompt_tokens\": 1}\n", TraceFormat::Jsonl),
        "t.jsonl line 2: missing output_tokens"
    );
    let m = err(
        "{\"arrival_s\": 0, \"prompt_tokens\": 1, \"output_tokens\": 1, \"extra\": 3}\n",
        TraceFormat::Jsonl,
    );
    assert!(
        m.starts_with("t.jsonl line 1: unknown field `extra`"),
        "{m}"
    );
    assert_eq!(err("", TraceFormat::Jsonl), "t.jsonl: no requests in trace");
}

#[test]
fn unknown_extension_is_a_one_line_error() {
    let e = vramplan_sim::load_trace(std::path::Path::new("requests.txt")).unwrap_err();
    assert!(matches!(e, SimError::Trace { .. }));
    assert_eq!(
        e.to_string(),
        "requests.txt: unknown trace format: use a .csv or .jsonl file"
    );
}

#[test]
fn api_requests_are_checked_like_trace_rows() {
    use vramplan_sim::{simulate, AllocatorKind, Request, SimConfig};
    let config = SimConfig::with_defaults(2, 1 << 20, 1000, 1e9, 1e12, 1000, 1e9, 256);
    let ok = Request {
        arrival_s: 0.0,
        prompt_tokens: 40,
        output_tokens: 4,
        parallel_samples: 1,
        beam_width: 1,
        prefix: Some(SharedPrefix {
            id: 4_000_000_000,
            tokens: 32,
        }),
    };
    // Sparse prefix ids are renumbered, not used as indices.
    let r = simulate(&config, &[ok, ok], &AllocatorKind::ALL, &mut |_, _| {}).unwrap();
    assert!(r.allocators.iter().all(|a| a.completed == 2));
    let other_len = Request {
        prefix: Some(SharedPrefix {
            id: 4_000_000_000,
            tokens: 16,
        }),
        ..ok
    };
    let e = simulate(
        &config,
        &[ok, other_len],
        &AllocatorKind::ALL,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid workload: shared prefix 4000000000 has 16 tokens in one request and 32 in another"
    );
    let both = Request {
        parallel_samples: 2,
        beam_width: 2,
        ..ok
    };
    assert!(simulate(&config, &[both], &AllocatorKind::ALL, &mut |_, _| {}).is_err());
    let too_long_prefix = Request {
        prefix: Some(SharedPrefix { id: 1, tokens: 41 }),
        ..ok
    };
    assert!(simulate(
        &config,
        &[too_long_prefix],
        &AllocatorKind::ALL,
        &mut |_, _| {}
    )
    .is_err());
    // A huge max_seq_len with the buddy placement: rejected requests, no overflow.
    let mut huge = config.clone();
    huge.max_seq_len = u32::MAX;
    huge.max_num_batched_tokens = u32::MAX;
    huge.contiguous_placement = vramplan_sim::Placement::Buddy;
    let r = simulate(
        &huge,
        &[Request { prefix: None, ..ok }],
        &AllocatorKind::ALL,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(r.allocators[0].rejected, 1); // contiguous-max would reserve 2^32 - 1 slots
    assert_eq!(r.allocators[3].completed, 1);
}

#[test]
fn a_fifo_is_refused_and_lines_are_bounded() {
    let dir = std::env::temp_dir().join(format!("vramplan-sim-traces-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("t.csv");
    let _ = std::fs::remove_file(&fifo);
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let e = vramplan_sim::load_trace(&fifo).unwrap_err().to_string();
    assert!(
        e.ends_with("not a regular file: give a .csv or .jsonl trace file"),
        "{e}"
    );
    // A line of 64 KiB + 1 bytes is refused; rows spread over many reads are not.
    let long = format!(
        "arrival_s,prompt_tokens,output_tokens\n0,1,{}\n",
        "1".repeat(65_536)
    );
    let e = parse_trace(&long, TraceFormat::Csv, "t.csv")
        .unwrap_err()
        .to_string();
    assert!(e.contains("a line longer than 65536 bytes"), "{e}");
    let many: String = std::iter::once("arrival_s,prompt_tokens,output_tokens\n".to_string())
        .chain((0..20_000).map(|i| format!("{i},{},{}\n", 1 + i % 7, 1 + i % 5)))
        .collect();
    let r = vramplan_sim::read_trace(
        std::io::BufReader::with_capacity(13, many.as_bytes()),
        TraceFormat::Csv,
        "t.csv",
    )
    .unwrap();
    assert_eq!(r.len(), 20_000);
    assert_eq!(
        (r[19_999].prompt_tokens, r[19_999].output_tokens),
        (1, 5) // row 19,999: 1 + 19,999 mod 7 = 1, 1 + 19,999 mod 5 = 5
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
