"""Every Redis key the service uses is built here, under one configurable prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "gridbot:"

    # tickets
    def ticket(self, number: str) -> str:
        return f"{self.prefix}ticket:{number}"

    def ticket_sequence(self, day: str) -> str:
        return f"{self.prefix}ticket-seq:{day}"

    def tickets_by_reporter(self, channel: str, user_id: str) -> str:
        return f"{self.prefix}reporter:{channel}:{user_id}:tickets"

    def tickets_by_status(self, status: str) -> str:
        return f"{self.prefix}status:{status}:tickets"

    def tickets_by_grid_status(self, grid_code: str, status: str) -> str:
        """Set: a grid's tickets in one status (those without a grid are in none), kept with the
        ticket like the status index: the worker desk and the digest read one grid's, not the city's."""
        return f"{self.prefix}grid:{grid_code}:status:{status}:tickets"

    def grid_index_version(self) -> str:
        """Set once the grid index holds every ticket (those stored before it existed were added
        at a start-up): absent, a process builds it before it is used."""
        return f"{self.prefix}index-version:grid"

    def all_tickets(self) -> str:
        return f"{self.prefix}tickets"

    # conversations
    def conversation(self, channel: str, user_id: str) -> str:
        return f"{self.prefix}conv:{channel}:{user_id}"

    def conversation_lock(self, channel: str, user_id: str) -> str:
        return f"{self.prefix}conv-lock:{channel}:{user_id}"

    def seen_message(self, channel: str, provider_message_id: str) -> str:
        """A provider message's claim, then its first answer (bot/inbox.py): taken by the
        dispatcher for a resident's, by the worker desk for a worker's or staff member's command."""
        return f"{self.prefix}seen:{channel}:{provider_message_id}"

    # every message anyone sent (residents, workers, staff), before anything else happens to it
    def inbox(self) -> str:
        return f"{self.prefix}inbox"

    # notifications written with the ticket change that causes them
    def outbox(self) -> str:
        return f"{self.prefix}outbox"

    # flow timers: a sorted set of due times
    def timers(self) -> str:
        return f"{self.prefix}timers"

    def ticket_timers(self, number: str) -> str:
        return f"{self.prefix}ticket-timers:{number}"

    # timers claimed by a process and not yet done: re-queued if their lease runs out
    def timers_inflight(self) -> str:
        return f"{self.prefix}timers-inflight"

    # flow versions
    def flow_versions(self) -> str:
        return f"{self.prefix}flow:versions"

    def flow_history(self) -> str:
        return f"{self.prefix}flow:history"

    def flow_current(self) -> str:
        return f"{self.prefix}flow:current"

    def flow_changed(self) -> str:
        """Pub/sub channel: a new flow version became current."""
        return f"{self.prefix}flow:changed"

    # the grid directory (bot/directory_holder.py): the current one, every version ever current
    def directory_current(self) -> str:
        """The current directory's version (what every process compares with its own)."""
        return f"{self.prefix}directory:current"

    def directory_text(self) -> str:
        """JSON: version, text, author, at, source, written (epoch seconds) of the current directory."""
        return f"{self.prefix}directory:text"

    def directory_versions(self) -> str:
        """Hash: version -> epoch seconds when it first became current (a stale file is recognised)."""
        return f"{self.prefix}directory:versions"

    def directory_changed(self) -> str:
        """Pub/sub channel: a new grid directory became current."""
        return f"{self.prefix}directory:changed"

    # admin console (bot/admin): users, sessions, lock-out counters, audit log
    def admin_user(self, username: str) -> str:
        return f"{self.prefix}admin-user:{username}"

    def admin_users(self) -> str:
        return f"{self.prefix}admin-users"

    def admin_session(self, token_hash: str) -> str:
        return f"{self.prefix}admin-session:{token_hash}"

    def admin_failures_user(self, username: str) -> str:
        return f"{self.prefix}admin-fail:user:{username}"

    def admin_failures_ip(self, ip: str) -> str:
        return f"{self.prefix}admin-fail:ip:{ip}"

    def admin_audit(self) -> str:
        return f"{self.prefix}admin-audit"

    # SMS (bot/sms.py): numbers that sent 退订/TD, and inbound SMS whose replies went out
    def sms_opted_out(self) -> str:
        return f"{self.prefix}sms-optout"

    def sms_replied(self, provider_message_id: str) -> str:
        return f"{self.prefix}sms-replied:{provider_message_id}"

    # Open311 API keys (bot/apikeys.py): SHA-256 of the key -> the client's record
    def api_keys(self) -> str:
        return f"{self.prefix}apikeys"

    # WeChat / WeCom (bot/wechat.py): callback dedup (apart from `seen:`), access tokens,
    # the customer-service window of each follower
    def wechat_callback_seen(self, dedup_key: str) -> str:
        return f"{self.prefix}wechat-seen:{dedup_key}"

    def wechat_token(self, name: str) -> str:
        return f"{self.prefix}wechat-token:{name}"

    def wechat_token_lock(self, name: str) -> str:
        return f"{self.prefix}wechat-token-lock:{name}"

    def wechat_cs_window(self, openid: str) -> str:
        """Customer-service messages sent since the follower's last message (TTL: the 48 h window)."""
        return f"{self.prefix}wechat-cs:{openid}"

    def wechat_cs_event_window(self, openid: str) -> str:
        """Customer-service messages sent since the follower's last menu click, follow or QR scan
        (TTL: that event's minute); apart from the 48 h window, so neither shortens the other."""
        return f"{self.prefix}wechat-cs-event:{openid}"

    # the notification outbox's delivery worker (bot/outbox.py)
    def outbox_retry(self) -> str:
        """Sorted set: deliveries waiting for their next try (score: due time)."""
        return f"{self.prefix}outbox-retry"

    def outbox_retry_inflight(self) -> str:
        """Sorted set: retries a worker has claimed (score: when its lease runs out, then they are due again)."""
        return f"{self.prefix}outbox-retry-inflight"

    def outbox_reply_order(self, channel: str, recipient: str) -> str:
        """List: outbox entry ids of late replies to one recipient not yet settled, oldest first
        (each goes only when no earlier one waits: a long answer's pieces arrive in order)."""
        return f"{self.prefix}outbox-reply-order:{channel}:{recipient}"

    def outbox_dead(self) -> str:
        """Hash: delivery id -> JSON of a delivery that gave up or may not have arrived (uncertain):
        admins list and retry them."""
        return f"{self.prefix}outbox-dead"

    def outbox_delivered(self, delivery_id: str) -> str:
        """SET NX before sending: a crash between send and ack never sends twice."""
        return f"{self.prefix}outbox-sent:{delivery_id}"

    def outbox_rate(self, channel: str, recipient: str) -> str:
        """Sorted set of send times within the last minute, per channel and recipient."""
        return f"{self.prefix}outbox-rate:{channel}:{recipient}"

    def robot_queue(self, robot_key_hash: str) -> str:
        """List of texts waiting for a group robot's rate window (merged when sent)."""
        return f"{self.prefix}robot-queue:{robot_key_hash}"

    def robot_flush_lock(self, robot_key_hash: str) -> str:
        """One process at a time sends a robot's queue (it trims what it sent)."""
        return f"{self.prefix}robot-flush-lock:{robot_key_hash}"

    def robot_queues(self) -> str:
        """Set of robot ids with something queued."""
        return f"{self.prefix}robot-queues"

    def ticket_deliveries(self, number: str) -> str:
        """Hash: delivery id -> JSON status, shown on the ticket page."""
        return f"{self.prefix}ticket-deliveries:{number}"

    def digest_sent(self, day: str) -> str:
        return f"{self.prefix}digest-sent:{day}"

    # grid workers (bot/worker_tasks.py): photos awaiting 办结
    def worker_photos(self, user_id: str) -> str:
        """List of JSON `KeptPhoto`s (the older `worker-photos:` held bare references)."""
        return f"{self.prefix}worker-kept-photos:{user_id}"

    def media_failed(self) -> str:
        """Hash: provider media id -> why downloading it failed (shown with the ticket's photos)."""
        return f"{self.prefix}media-failed"

    def media_ticket(self, media_id: str) -> str:
        """The ticket a resident's photo went into, while a late download failure may need it."""
        return f"{self.prefix}media-ticket:{media_id}"

    def media_noted(self) -> str:
        """Hash: media ids whose failed download is already in their ticket's timeline."""
        return f"{self.prefix}media-noted"

    def media_retry(self, source: str) -> str:
        """Sorted set (due time) of JSON `MediaRetry`s: downloads from `source` (wechat_mp, wecom)
        that met a passing failure and are tried again while the provider still keeps the file."""
        return f"{self.prefix}media-retry:{source}"

    def media_retry_inflight(self, source: str) -> str:
        """Sorted set (lease end) of the `media_retry` members a process is trying now."""
        return f"{self.prefix}media-retry-inflight:{source}"
