#![allow(clippy::unwrap_used)]

use super::*;

const GRACE: Duration = Duration::from_secs(30);

fn peer(name: &str) -> PeerId {
    format!("peer-{name}-0000000000").try_into().unwrap()
}

fn name(text: &str) -> DisplayName {
    text.to_owned().try_into().unwrap()
}

fn secret(fill: char) -> OwnerSecret {
    fill.to_string().repeat(43).try_into().unwrap()
}

/// Each session joins from an address of its own unless a test says otherwise.
fn enter(
    room: &mut Room,
    now: Instant,
    session: SessionId,
    peer: PeerId,
    name: DisplayName,
) -> Result<Joined, ErrorCode> {
    room.join(
        now,
        JoinRequest {
            session,
            peer,
            name,
            address: AddressTag([session.0 as u8; 16]),
            owner_secret: None,
        },
    )
}

fn drain(room: &mut Room) -> Vec<Output> {
    std::iter::from_fn(|| room.poll_output()).collect()
}

fn pair() -> (Room, Instant) {
    (
        Room::new(RoomPolicy::pair(GRACE), secret('a')),
        Instant::now(),
    )
}

/// A pair room with Ann (session 1) and Bob (session 2) in it, announcements already drained.
fn ann_and_bob() -> (Room, Instant) {
    let (mut room, now) = pair();
    enter(&mut room, now, SessionId(1), peer("ann"), name("Ann")).unwrap();
    enter(&mut room, now, SessionId(2), peer("bob"), name("Bob")).unwrap();
    drain(&mut room);
    (room, now)
}

#[test]
fn first_joiner_sees_an_empty_room() {
    let (mut room, now) = pair();
    let joined = enter(&mut room, now, SessionId(1), peer("ann"), name("Ann")).unwrap();
    assert_eq!(
        joined,
        Joined {
            peers: vec![],
            resumed: false,
            owner_secret: Some(secret('a')),
            state: RoomState {
                owner: Some(peer("ann")),
                locked: false,
                capacity: 2,
                luna: None,
            },
        }
    );
    assert!(drain(&mut room).is_empty());
}

#[test]
fn second_joiner_sees_the_first_and_the_first_is_told() {
    let (mut room, now) = pair();
    enter(&mut room, now, SessionId(1), peer("ann"), name("Ann")).unwrap();
    let joined = enter(&mut room, now, SessionId(2), peer("bob"), name("Bob")).unwrap();
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
        enter(&mut room, now, SessionId(3), peer("eve"), name("Eve")),
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
    assert!(enter(&mut room, now, SessionId(3), peer("eve"), name("Eve")).is_ok());
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
        enter(&mut room, now, SessionId(3), peer("eve"), name("Eve")),
        Err(ErrorCode::RoomFull)
    );
    let joined = enter(
        &mut room,
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
    let joined = enter(&mut room, later, SessionId(3), peer("eve"), name("Eve")).unwrap();
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
    let joined = enter(&mut room, now, SessionId(5), peer("bob"), name("Bob")).unwrap();
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
    enter(&mut room, now, SessionId(3), peer("bob"), name("Robert")).unwrap();
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
    enter(&mut room, now, SessionId(1), peer("ann"), name("Ann")).unwrap();
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
    enter(&mut room, now, SessionId(2), peer("bob"), name("Bob")).unwrap();
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
    enter(&mut room, now, SessionId(1), peer("ann"), name("Ann")).unwrap();
    assert_eq!(
        enter(&mut room, now, SessionId(1), peer("bob"), name("Bob")),
        Err(ErrorCode::AlreadyJoined)
    );
}

#[test]
fn the_room_is_empty_only_when_every_grace_has_run_out() {
    let (mut room, now) = pair();
    enter(&mut room, now, SessionId(1), peer("ann"), name("Ann")).unwrap();
    room.disconnected(now, SessionId(1));
    assert!(!room.is_empty());
    room.handle_timeout(now + GRACE);
    assert!(room.is_empty());
    assert!(drain(&mut room).is_empty(), "nobody left to tell");
}

/// A group room of four (Ann owns it) with announcements drained.
fn group_of_four() -> (Room, Instant) {
    let mut room = Room::new(RoomPolicy::group(8, GRACE), secret('a'));
    let now = Instant::now();
    for (session, who) in [(1, "ann"), (2, "bob"), (3, "cara"), (4, "dan")] {
        enter(&mut room, now, SessionId(session), peer(who), name(who)).unwrap();
    }
    drain(&mut room);
    (room, now)
}

fn join_with(
    room: &mut Room,
    now: Instant,
    session: u64,
    who: &str,
    address: u8,
    owner_secret: Option<OwnerSecret>,
) -> Result<Joined, ErrorCode> {
    room.join(
        now,
        JoinRequest {
            session: SessionId(session),
            peer: peer(who),
            name: name(who),
            address: AddressTag([address; 16]),
            owner_secret,
        },
    )
}

fn closes(outputs: &[Output]) -> Vec<(SessionId, ErrorCode, u16)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Close {
                session,
                error,
                code,
            } => Some((*session, *error, *code)),
            Output::Send { .. } => None,
        })
        .collect()
}

#[test]
fn only_the_first_joiner_gets_the_secret_and_only_the_owner_moderates() {
    let mut room = Room::new(RoomPolicy::group(8, GRACE), secret('a'));
    let now = Instant::now();
    let ann = enter(&mut room, now, SessionId(1), peer("ann"), name("Ann")).unwrap();
    let bob = enter(&mut room, now, SessionId(2), peer("bob"), name("Bob")).unwrap();
    assert_eq!(ann.owner_secret, Some(secret('a')));
    assert_eq!(bob.owner_secret, None);
    assert_eq!(bob.state.owner, Some(peer("ann")));
    assert_eq!(
        room.kick(SessionId(2), &peer("ann")),
        Err(ErrorCode::NotOwner)
    );
    assert_eq!(
        room.ban(SessionId(2), &peer("ann")),
        Err(ErrorCode::NotOwner)
    );
    assert_eq!(room.lock(SessionId(2), true), Err(ErrorCode::NotOwner));
    assert_eq!(room.set_capacity(SessionId(2), 3), Err(ErrorCode::NotOwner));
    assert_eq!(
        room.hand_over(SessionId(2), &peer("bob"), secret('b')),
        Err(ErrorCode::NotOwner)
    );
    assert_eq!(
        room.kick(SessionId(9), &peer("bob")),
        Err(ErrorCode::NotJoined)
    );
    assert_eq!(
        room.kick(SessionId(1), &peer("ann")),
        Err(ErrorCode::BadMessage)
    );
    assert_eq!(
        room.kick(SessionId(1), &peer("zed")),
        Err(ErrorCode::UnknownPeer)
    );
}

#[test]
fn the_owner_secret_makes_its_holder_owner_and_a_wrong_one_does_nothing() {
    let (mut room, now) = group_of_four();
    room.leave(SessionId(1));
    drain(&mut room);
    // A wrong secret is ignored: Ann, on a new device, joins as a member.
    let wrong = join_with(&mut room, now, 5, "ann2", 5, Some(secret('z'))).unwrap();
    assert_eq!(wrong.state.owner, Some(peer("ann")));
    assert_eq!(room.lock(SessionId(5), true), Err(ErrorCode::NotOwner));
    room.leave(SessionId(5));
    drain(&mut room);
    // The right one makes the new peer id owner, and everyone hears of it.
    let right = join_with(&mut room, now, 6, "ann3", 6, Some(secret('a'))).unwrap();
    assert_eq!(right.state.owner, Some(peer("ann3")));
    assert_eq!(right.owner_secret, None, "the holder already has it");
    let told = drain(&mut room)
        .into_iter()
        .filter(|o| {
            matches!(o, Output::Send { message: ServerMessage::RoomState { owner, .. }, .. }
            if owner.as_ref() == Some(&peer("ann3")))
        })
        .count();
    assert_eq!(told, 4, "everyone is told, the new owner too");
    assert_eq!(room.lock(SessionId(6), true), Ok(()));
}

#[test]
fn a_kicked_peer_is_told_and_may_come_back() {
    let (mut room, now) = group_of_four();
    room.kick(SessionId(1), &peer("bob")).unwrap();
    let outputs = drain(&mut room);
    assert_eq!(
        closes(&outputs),
        vec![(SessionId(2), ErrorCode::Kicked, close::KICKED)]
    );
    let left = outputs
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    message: ServerMessage::PeerLeft {
                        reason: LeaveReason::Kicked,
                        ..
                    },
                    ..
                }
            )
        })
        .count();
    assert_eq!(left, 3, "Ann, Cara and Dan see why Bob left");
    assert_eq!(room.len(), 3);
    assert!(join_with(&mut room, now, 7, "bob", 2, None).is_ok());
}

#[test]
fn a_ban_covers_the_peer_id_and_a_fresh_identity_from_the_same_address() {
    let (mut room, now) = group_of_four();
    room.ban(SessionId(1), &peer("bob")).unwrap();
    assert_eq!(
        closes(&drain(&mut room)),
        vec![(SessionId(2), ErrorCode::Banned, close::BANNED)]
    );
    // Same id from another address, a fresh id from the same address: both refused.
    assert_eq!(
        join_with(&mut room, now, 7, "bob", 99, None),
        Err(ErrorCode::Banned)
    );
    assert_eq!(
        join_with(&mut room, now, 8, "bob-fresh", 2, None),
        Err(ErrorCode::Banned)
    );
    // Somebody else from elsewhere still gets in.
    assert!(join_with(&mut room, now, 9, "eve", 9, None).is_ok());
    // A ban outlives the banned peer's grace: it is the room's, not the member's.
    room.handle_timeout(now + GRACE * 3);
    assert_eq!(
        join_with(&mut room, now + GRACE * 3, 10, "bob", 2, None),
        Err(ErrorCode::Banned)
    );
}

#[test]
fn the_owner_passes_a_ban_on_a_shared_address() {
    let (mut room, now) = group_of_four();
    // Cara shares Ann's address (session 3's tag is [3; 16]; Ann rejoins from it).
    room.ban(SessionId(1), &peer("cara")).unwrap();
    room.leave(SessionId(1));
    drain(&mut room);
    assert_eq!(
        join_with(&mut room, now, 11, "ann", 3, None),
        Err(ErrorCode::Banned)
    );
    assert!(join_with(&mut room, now, 12, "ann", 3, Some(secret('a'))).is_ok());
}

#[test]
fn a_locked_room_refuses_newcomers_but_not_returning_members() {
    let (mut room, now) = group_of_four();
    room.lock(SessionId(1), true).unwrap();
    let told = drain(&mut room)
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    message: ServerMessage::RoomState { locked: true, .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(told, 4);
    assert_eq!(
        join_with(&mut room, now, 5, "eve", 5, None),
        Err(ErrorCode::RoomLocked)
    );
    // Dan's connection drops; he comes back within his grace.
    room.disconnected(now, SessionId(4));
    assert!(join_with(&mut room, now, 6, "dan", 4, None).is_ok());
    // Cara leaves (a reload leaves), then comes back: she was in when it was locked.
    room.leave(SessionId(3));
    assert!(join_with(&mut room, now, 8, "cara", 3, None).is_ok());
    // Bob is removed: that ends his right to return while it stays locked.
    room.kick(SessionId(1), &peer("bob")).unwrap();
    assert_eq!(
        join_with(&mut room, now, 9, "bob", 2, None),
        Err(ErrorCode::RoomLocked)
    );
    room.lock(SessionId(1), false).unwrap();
    assert!(join_with(&mut room, now, 7, "eve", 5, None).is_ok());
    // Unlocking forgets who was in: locking again counts those present now.
    room.leave(SessionId(7));
    room.lock(SessionId(1), true).unwrap();
    assert_eq!(
        join_with(&mut room, now, 10, "eve", 5, None),
        Err(ErrorCode::RoomLocked)
    );
}

#[test]
fn the_owner_sets_the_capacity_within_limits() {
    let (mut room, now) = group_of_four();
    for bad in [0, 1, 9, u32::MAX] {
        assert_eq!(
            room.set_capacity(SessionId(1), bad),
            Err(ErrorCode::InvalidCapacity),
            "{bad}"
        );
    }
    room.set_capacity(SessionId(1), 5).unwrap();
    assert!(join_with(&mut room, now, 5, "eve", 5, None).is_ok());
    assert_eq!(
        join_with(&mut room, now, 6, "fay", 6, None),
        Err(ErrorCode::RoomFull)
    );
    // Below the number present: nobody is removed, nobody new enters.
    room.set_capacity(SessionId(1), 2).unwrap();
    assert_eq!(room.len(), 5);
    room.leave(SessionId(5));
    assert_eq!(
        join_with(&mut room, now, 7, "fay", 7, None),
        Err(ErrorCode::RoomFull)
    );
    // Pair rooms have no capacity to set.
    let (mut pair_room, now) = pair();
    enter(&mut pair_room, now, SessionId(1), peer("ann"), name("Ann")).unwrap();
    assert_eq!(
        pair_room.set_capacity(SessionId(1), 2),
        Err(ErrorCode::InvalidCapacity)
    );
}

#[test]
fn handing_over_moves_ownership_and_retires_the_old_secret() {
    let (mut room, now) = group_of_four();
    room.hand_over(SessionId(1), &peer("cara"), secret('c'))
        .unwrap();
    let outputs = drain(&mut room);
    assert!(outputs.iter().any(|o| matches!(o,
        Output::Send { to: SessionId(3), message: ServerMessage::OwnerSecret { secret: s } } if *s == secret('c'))));
    assert_eq!(room.lock(SessionId(1), true), Err(ErrorCode::NotOwner));
    assert_eq!(room.lock(SessionId(3), true), Ok(()));
    room.leave(SessionId(1));
    // Ann's old secret no longer opens the lock (from a new device, a new peer id).
    assert_eq!(
        join_with(&mut room, now, 8, "ann-laptop", 1, Some(secret('a'))),
        Err(ErrorCode::RoomLocked)
    );
    // Someone within their grace cannot receive a secret.
    room.disconnected(now, SessionId(2));
    assert_eq!(
        room.hand_over(SessionId(3), &peer("bob"), secret('d')),
        Err(ErrorCode::UnknownPeer)
    );
}

#[test]
fn luna_is_offered_only_with_an_assistant_and_allowed_by_the_right_person() {
    // Without an assistant there is nothing to allow.
    let (mut room, _) = group_of_four();
    assert_eq!(
        room.allow_luna(SessionId(1), true),
        Err(ErrorCode::LunaUnavailable)
    );
    assert_eq!(room.state().luna, None);
    assert_eq!(
        room.may_ask_luna(SessionId(2)),
        Err(ErrorCode::LunaUnavailable)
    );

    // A group room: the owner decides, everyone is told.
    let mut room = Room::new(
        RoomPolicy::group(8, GRACE).with_assistant(true),
        secret('a'),
    );
    let now = Instant::now();
    for (session, who) in [(1, "ann"), (2, "bob")] {
        enter(&mut room, now, SessionId(session), peer(who), name(who)).unwrap();
    }
    drain(&mut room);
    assert_eq!(room.state().luna, Some(false));
    assert_eq!(
        room.may_ask_luna(SessionId(2)),
        Err(ErrorCode::LunaDisabled)
    );
    assert_eq!(
        room.allow_luna(SessionId(2), true),
        Err(ErrorCode::NotOwner)
    );
    room.allow_luna(SessionId(1), true).unwrap();
    let told = drain(&mut room)
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    message: ServerMessage::RoomState {
                        luna: Some(true),
                        ..
                    },
                    ..
                }
            )
        })
        .count();
    assert_eq!(told, 2);
    assert_eq!(room.may_ask_luna(SessionId(2)), Ok(name("bob")));
    assert_eq!(room.may_ask_luna(SessionId(9)), Err(ErrorCode::NotJoined));

    // A pair room: either person decides.
    let mut pair_room = Room::new(RoomPolicy::pair(GRACE).with_assistant(true), secret('a'));
    enter(&mut pair_room, now, SessionId(1), peer("ann"), name("Ann")).unwrap();
    enter(&mut pair_room, now, SessionId(2), peer("bob"), name("Bob")).unwrap();
    pair_room.allow_luna(SessionId(2), true).unwrap();
    assert_eq!(pair_room.may_ask_luna(SessionId(1)), Ok(name("Ann")));
    pair_room.allow_luna(SessionId(1), false).unwrap();
    assert_eq!(
        pair_room.may_ask_luna(SessionId(2)),
        Err(ErrorCode::LunaDisabled)
    );
}
