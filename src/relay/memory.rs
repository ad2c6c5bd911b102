//! The memory the relay reuses on one worker: read buffers lent to
//! exchanges in progress, the blocks re-serialized heads are written into,
//! and the boxes parsed request heads travel in. An idle client connection
//! holds none of it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::protocols::http::RequestHead;

/// One worker's reusable memory.
#[derive(Default)]
pub struct Memory {
    /// Spare read buffers, lent to exchanges in progress: an idle client
    /// connection holds none of them.
    buffers: RefCell<Vec<BytesMut>>,
    /// The fewest spare buffers there were since the last [`Memory::trim`]:
    /// that many were not needed at all over the interval.
    fewest_spare: Cell<usize>,
    /// Where re-serialized heads are written: each head is split off as
    /// `Bytes`, and the block is reused once the heads in it were sent.
    heads: RefCell<BytesMut>,
    /// Used-up head blocks, oldest first, until every head in them was sent.
    retired_heads: RefCell<VecDeque<BytesMut>>,
    /// Small buffers HTTP clients wait in between requests, put aside while
    /// a lent buffer held a body read whole (see [`Memory::swap_for_lent`]).
    idle_buffers: RefCell<Vec<BytesMut>>,
    /// Spare boxes for parsed request heads (see [`Memory::box_head`]):
    /// the boxes themselves are what is kept for reuse.
    #[allow(clippy::vec_box)]
    request_heads: RefCell<Vec<Box<RequestHead>>>,
}

/// Size of a lent read buffer. Room for a 64 KiB response with its head in
/// one read, and for what loopback TCP delivers at once (64 KiB segments):
/// with 64 KiB buffers a 64 KiB response took two reads and two writes, and
/// 20 % more CPU (benches/ab.sh BODY_BYTES=65536); 256 KiB gained nothing more.
const BUFFER_SIZE: usize = 128 * 1024;
/// Spare buffers a worker keeps for reuse.
const SPARE_BUFFERS: usize = 64;
/// Spare buffers kept however long they go unused: a burst after a quiet
/// spell allocates no more than this many.
const SPARE_BUFFERS_KEPT: usize = 8;
/// Spare idle-client buffers a worker keeps.
const SPARE_IDLE_BUFFERS: usize = 64;
/// Spare request-head boxes a worker keeps: one per exchange in progress.
const SPARE_REQUEST_HEADS: usize = 64;
/// The block heads are written into: room for dozens of heads in flight.
const HEAD_BLOCK: usize = 16 * 1024;
/// Used-up head blocks kept for reuse.
const RETIRED_HEAD_BLOCKS: usize = 4;

impl Memory {
    /// `head` in a box, a spare one when there is one. A connection's task
    /// reserves room for what its head read returns, so the head travels
    /// boxed and an idle client does not carry 640 bytes for it; reusing the
    /// boxes keeps that from costing an allocation per request.
    pub fn box_head(&self, head: RequestHead) -> Box<RequestHead> {
        let spare = self.request_heads.borrow_mut().pop();
        match spare {
            Some(mut boxed) => {
                *boxed = head;
                boxed
            }
            None => Box::new(head),
        }
    }

    /// Takes back the box of a head whose exchange is over. A spare box
    /// keeps its last head (with any field storage that spilled to the heap)
    /// until it is reused: at most `SPARE_REQUEST_HEADS` of them.
    pub fn recycle_head(&self, head: Box<RequestHead>) {
        let mut spare = self.request_heads.borrow_mut();
        if spare.len() < SPARE_REQUEST_HEADS {
            spare.push(head);
        }
    }

    /// Runs `write` on the worker's head block and returns what it wrote, as
    /// bytes to send: no allocation while earlier heads of the block are
    /// sent before it runs out.
    pub fn write_head<R>(&self, write: impl FnOnce(&mut BytesMut) -> R) -> (Bytes, R) {
        let mut block = self.heads.borrow_mut();
        if block.capacity() < HEAD_BLOCK / 4 {
            let used_up = std::mem::take(&mut *block);
            *block = self.next_head_block(used_up);
        }
        let result = write(&mut block);
        (block.split().freeze(), result)
    }

    /// A head block to write in after `used_up`: the oldest retired block
    /// once none of its heads is alive any more, else a new one. Under load
    /// the heads of the last block or two are still being sent, so a few
    /// blocks take turns (reserving on a block whose heads are still alive
    /// allocated a new block for every head).
    fn next_head_block(&self, used_up: BytesMut) -> BytesMut {
        let mut retired = self.retired_heads.borrow_mut();
        if let Some(mut oldest) = retired.pop_front() {
            if oldest.try_reclaim(HEAD_BLOCK) {
                retired.push_back(used_up);
                return oldest;
            }
            retired.push_front(oldest);
        }
        retired.push_back(used_up);
        if retired.len() > RETIRED_HEAD_BLOCKS {
            // Freed with its last head.
            retired.pop_front();
        }
        BytesMut::with_capacity(HEAD_BLOCK)
    }

    /// An empty read buffer, reused when one is spare.
    pub fn take_buffer(&self) -> BytesMut {
        let mut spare = self.buffers.borrow_mut();
        let taken = spare.pop();
        self.fewest_spare
            .set(self.fewest_spare.get().min(spare.len()));
        taken.unwrap_or_else(|| BytesMut::with_capacity(BUFFER_SIZE))
    }

    /// Frees the spare buffers no exchange needed since the last trim,
    /// beyond `SPARE_BUFFERS_KEPT`: after a burst of slow readers (each
    /// holding a buffer) the worker does not keep their 8 MiB of spares.
    /// The worker calls it every second.
    pub fn trim(&self) {
        let mut spare = self.buffers.borrow_mut();
        let unused = self.fewest_spare.get().min(spare.len());
        let keep = spare.len() - unused.saturating_sub(SPARE_BUFFERS_KEPT);
        spare.truncate(keep);
        spare.shrink_to(SPARE_BUFFERS);
        self.fewest_spare.set(spare.len());
    }

    /// Moves the bytes of `small` into a lent buffer with room for at least
    /// `room` more, and keeps `small` for [`Memory::idle_buffer`]: a body
    /// read whole costs neither a grown buffer nor a new small one after.
    pub fn swap_for_lent(&self, small: &mut BytesMut, room: usize) {
        let mut lent = self.take_buffer();
        lent.reserve(small.len() + room);
        lent.extend_from_slice(small);
        let mut small = std::mem::replace(small, lent);
        small.clear();
        let mut spare = self.idle_buffers.borrow_mut();
        if spare.len() < SPARE_IDLE_BUFFERS {
            spare.push(small);
        }
    }

    /// A buffer of `capacity` for a client between requests, one put aside
    /// by [`Memory::swap_for_lent`] when there is one.
    pub fn idle_buffer(&self, capacity: usize) -> BytesMut {
        match self.idle_buffers.borrow_mut().pop() {
            Some(mut spare) => {
                // Reclaims its whole allocation: nothing else refers to it.
                spare.reserve(capacity);
                spare
            }
            None => BytesMut::with_capacity(capacity),
        }
    }

    /// Returns a buffer for reuse (dropped when it is not empty, has been
    /// shrunk by splits, or enough are spare).
    pub fn recycle(&self, mut buffer: BytesMut) {
        let mut spare = self.buffers.borrow_mut();
        if buffer.is_empty() && spare.len() < SPARE_BUFFERS {
            buffer.clear();
            // Reclaims the whole allocation once no split part is alive.
            buffer.reserve(BUFFER_SIZE);
            if buffer.capacity() <= 2 * BUFFER_SIZE {
                spare.push(buffer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Memory {
        Memory::default()
    }

    fn write(ctx: &Memory, bytes: &[u8]) -> Bytes {
        ctx.write_head(|out| out.extend_from_slice(bytes)).0
    }

    #[test]
    fn spare_buffers_unused_for_an_interval_are_freed() {
        let memory = context();
        let burst: Vec<BytesMut> = (0..SPARE_BUFFERS).map(|_| memory.take_buffer()).collect();
        burst.into_iter().for_each(|b| memory.recycle(b));
        assert_eq!(memory.buffers.borrow().len(), SPARE_BUFFERS);
        // The burst's interval: all of them were in use at once.
        memory.trim();
        assert_eq!(memory.buffers.borrow().len(), SPARE_BUFFERS);
        // A quiet interval, two buffers in use at most: the spares beyond
        // those two, and beyond the few always kept, go.
        let (a, b) = (memory.take_buffer(), memory.take_buffer());
        memory.recycle(a);
        memory.recycle(b);
        memory.trim();
        assert_eq!(memory.buffers.borrow().len(), SPARE_BUFFERS_KEPT + 2);
        memory.trim();
        assert_eq!(memory.buffers.borrow().len(), SPARE_BUFFERS_KEPT);
    }

    #[test]
    fn heads_come_out_as_written() {
        let ctx = context();
        let heads: Vec<Bytes> = (0..1000)
            .map(|i| write(&ctx, format!("head {i}\r\n").as_bytes()))
            .collect();
        for (i, head) in heads.iter().enumerate() {
            assert_eq!(&head[..], format!("head {i}\r\n").as_bytes());
        }
    }

    #[test]
    fn blocks_still_holding_live_heads_are_not_overwritten() {
        let ctx = context();
        let kept: Vec<Bytes> = (0..200u8).map(|i| write(&ctx, &[i; 500])).collect();
        for (i, head) in kept.iter().enumerate() {
            assert!(head.iter().all(|&b| b == i as u8), "head {i} overwritten");
        }
    }
}
