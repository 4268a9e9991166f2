#![allow(clippy::unwrap_used)]

use super::*;

const GRACE: Duration = Duration::from_secs(30);

fn peer(name: &str) -> PeerId {
    format!("peer-{name}-0000000000").try_into().unwrap()
}

fn name(text: &str) -> DisplayName {
    text.to_owned().try_into().unwrap()
}

fn drain(room: &mut Room) -> Vec<Output> {
    std::iter::from_fn(|| room.poll_output()).collect()
}

fn pair() -> (Room, Instant) {
    (Room::new(RoomPolicy::pair(GRACE)), Instant::now())
}

/// A pair room with Ann (session 1) and Bob (session 2) in it, announcements already drained.
fn ann_and_bob() -> (Room, Instant) {
    let (mut room, now) = pair();
    room.join(now, SessionId(1), peer("ann"), name("Ann"))
        .unwrap();
    room.join(now, SessionId(2), peer("bob"), name("Bob"))
        .unwrap();
    drain(&mut room);
    (room, now)
}

#[test]
fn first_joiner_sees_an_empty_room() {
    let (mut room, now) = pair();
    let joined = room
        .join(now, SessionId(1), peer("ann"), name("Ann"))
        .unwrap();
    assert_eq!(
        joined,
        Joined {
            peers: vec![],
            resumed: false
        }
    );
    assert!(drain(&mut room).is_empty());
}

#[test]
fn second_joiner_sees_the_first_and_the_first_is_told() {
    let (mut room, now) = pair();
    room.join(now, SessionId(1), peer("ann"), name("Ann"))
        .unwrap();
    let joined = room
        .join(now, SessionId(2), peer("bob"), name("Bob"))
        .unwrap();
    assert_eq!(
        joined.peers,
        vec![PeerInfo {
            peer: peer("ann"),
            name: name("Ann")
        }]
    );
    assert_eq!(
        drain(&mut room),
        vec![Output::Send {
            to: SessionId(1),
            message: ServerMessage::PeerJoined {
                peer: peer("bob"),
                name: name("Bob")
            },
        }]
    );
}

#[test]
fn third_joiner_of_a_pair_room_is_refused() {
    let (mut room, now) = ann_and_bob();
    assert_eq!(
        room.join(now, SessionId(3), peer("eve"), name("Eve")),
        Err(ErrorCode::RoomFull)
    );
    assert!(
        drain(&mut room).is_empty(),
        "nobody is told about a refused join"
    );
    assert_eq!(room.len(), 2);
}

#[test]
fn leave_tells_the_other_at_once_and_frees_the_place() {
    let (mut room, now) = ann_and_bob();
    assert!(room.leave(SessionId(2)));
    assert_eq!(
        drain(&mut room),
        vec![Output::Send {
            to: SessionId(1),
            message: ServerMessage::PeerLeft {
                peer: peer("bob"),
                reason: LeaveReason::Left
            },
        }]
    );
    assert!(
        room.join(now, SessionId(3), peer("eve"), name("Eve"))
            .is_ok()
    );
    assert!(!room.leave(SessionId(2)), "a second leave is a no-op");
}

#[test]
fn a_dropped_peer_keeps_its_place_silently_within_the_grace_period() {
    let (mut room, now) = ann_and_bob();
    room.disconnected(now, SessionId(2));
    assert_eq!(room.poll_timeout(), Some(now + GRACE));
    room.handle_timeout(now + GRACE - Duration::from_millis(1));
    assert!(
        drain(&mut room).is_empty(),
        "nobody is told within the grace period"
    );
    // The kept place still counts: a stranger cannot take it.
    assert_eq!(
        room.join(now, SessionId(3), peer("eve"), name("Eve")),
        Err(ErrorCode::RoomFull)
    );
    let joined = room
        .join(
            now + Duration::from_secs(29),
            SessionId(4),
            peer("bob"),
            name("Bob"),
        )
        .unwrap();
    assert!(joined.resumed);
    assert_eq!(
        joined.peers,
        vec![PeerInfo {
            peer: peer("ann"),
            name: name("Ann")
        }]
    );
    assert!(
        drain(&mut room).is_empty(),
        "a resumed peer is not announced as new"
    );
    assert_eq!(room.poll_timeout(), None);
}

#[test]
fn a_dropped_peer_that_does_not_return_is_announced_as_timed_out() {
    let (mut room, now) = ann_and_bob();
    room.disconnected(now, SessionId(2));
    room.handle_timeout(now + GRACE);
    assert_eq!(
        drain(&mut room),
        vec![Output::Send {
            to: SessionId(1),
            message: ServerMessage::PeerLeft {
                peer: peer("bob"),
                reason: LeaveReason::TimedOut
            },
        }]
    );
    assert_eq!(room.len(), 1);
}

#[test]
fn a_join_after_the_grace_expired_counts_as_new_even_without_a_timer_tick() {
    let (mut room, now) = ann_and_bob();
    room.disconnected(now, SessionId(2));
    let later = now + GRACE + Duration::from_secs(1);
    let joined = room
        .join(later, SessionId(3), peer("eve"), name("Eve"))
        .unwrap();
    assert!(!joined.resumed);
    let outputs = drain(&mut room);
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert!(matches!(
        &outputs[0],
        Output::Send {
            message: ServerMessage::PeerLeft { .. },
            ..
        }
    ));
    assert!(matches!(
        &outputs[1],
        Output::Send {
            message: ServerMessage::PeerJoined { .. },
            ..
        }
    ));
}

#[test]
fn a_second_session_with_the_same_peer_id_replaces_the_first() {
    let (mut room, now) = ann_and_bob();
    let joined = room
        .join(now, SessionId(5), peer("bob"), name("Bob"))
        .unwrap();
    assert!(joined.resumed);
    assert_eq!(
        drain(&mut room),
        vec![Output::Close {
            session: SessionId(2),
            error: ErrorCode::Replaced,
            code: close::REPLACED
        }]
    );
    // The replaced session is no longer anyone: its late disconnect or leave changes nothing.
    room.disconnected(now, SessionId(2));
    assert!(!room.leave(SessionId(2)));
    assert_eq!(room.poll_timeout(), None);
    assert_eq!(room.peer_of(SessionId(5)), Some(&peer("bob")));
}

#[test]
fn rejoining_under_a_new_name_announces_the_rename() {
    let (mut room, now) = ann_and_bob();
    room.disconnected(now, SessionId(2));
    room.join(now, SessionId(3), peer("bob"), name("Robert"))
        .unwrap();
    assert_eq!(
        drain(&mut room),
        vec![Output::Send {
            to: SessionId(1),
            message: ServerMessage::PeerRenamed {
                peer: peer("bob"),
                name: name("Robert")
            },
        }]
    );
}

#[test]
fn rename_is_announced_to_the_others_only() {
    let (mut room, _) = ann_and_bob();
    room.rename(SessionId(1), name("Annie")).unwrap();
    assert_eq!(
        drain(&mut room),
        vec![Output::Send {
            to: SessionId(2),
            message: ServerMessage::PeerRenamed {
                peer: peer("ann"),
                name: name("Annie")
            },
        }]
    );
    room.rename(SessionId(1), name("Annie")).unwrap();
    assert!(
        drain(&mut room).is_empty(),
        "an unchanged name is not announced"
    );
    assert_eq!(
        room.rename(SessionId(9), name("X")),
        Err(ErrorCode::NotJoined)
    );
}

#[test]
fn signal_is_relayed_to_the_addressee_with_the_sender_id() {
    let (mut room, _) = ann_and_bob();
    let payload = serde_json::json!({"description": {"type": "offer", "sdp": "v=0"}});
    room.signal(SessionId(2), &peer("ann"), payload.clone())
        .unwrap();
    assert_eq!(
        drain(&mut room),
        vec![Output::Send {
            to: SessionId(1),
            message: ServerMessage::Signal {
                from: peer("bob"),
                payload
            },
        }]
    );
}

#[test]
fn signal_to_nobody_or_to_self_or_from_outside_is_refused() {
    let (mut room, now) = pair();
    room.join(now, SessionId(1), peer("ann"), name("Ann"))
        .unwrap();
    let payload = serde_json::json!({});
    assert_eq!(
        room.signal(SessionId(1), &peer("bob"), payload.clone()),
        Err(ErrorCode::UnknownPeer)
    );
    assert_eq!(
        room.signal(SessionId(1), &peer("ann"), payload.clone()),
        Err(ErrorCode::UnknownPeer)
    );
    assert_eq!(
        room.signal(SessionId(7), &peer("ann"), payload.clone()),
        Err(ErrorCode::NotJoined)
    );
    room.join(now, SessionId(2), peer("bob"), name("Bob"))
        .unwrap();
    room.disconnected(now, SessionId(2));
    assert_eq!(
        room.signal(SessionId(1), &peer("bob"), payload),
        Err(ErrorCode::UnknownPeer)
    );
    assert!(drain(&mut room).iter().all(|o| !matches!(
        o,
        Output::Send {
            message: ServerMessage::Signal { .. },
            ..
        }
    )));
}

#[test]
fn a_session_cannot_join_twice() {
    let (mut room, now) = pair();
    room.join(now, SessionId(1), peer("ann"), name("Ann"))
        .unwrap();
    assert_eq!(
        room.join(now, SessionId(1), peer("bob"), name("Bob")),
        Err(ErrorCode::AlreadyJoined)
    );
}

#[test]
fn the_room_is_empty_only_when_every_grace_has_run_out() {
    let (mut room, now) = pair();
    room.join(now, SessionId(1), peer("ann"), name("Ann"))
        .unwrap();
    room.disconnected(now, SessionId(1));
    assert!(!room.is_empty());
    room.handle_timeout(now + GRACE);
    assert!(room.is_empty());
    assert!(drain(&mut room).is_empty(), "nobody left to tell");
}
