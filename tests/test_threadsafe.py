"""call_soon_threadsafe: wakes a sleeping loop, many producers, no lost wakeup."""

import threading
import time


def test_wakes_sleeping_loop(loop):
    out = []

    def producer():
        time.sleep(0.05)
        loop.call_soon_threadsafe(lambda: (out.append("woke"), loop.stop()))

    # Nothing else is scheduled: without a wakeup the loop would sleep forever
    # (guard with a far timer so a broken loop fails instead of hanging).
    guard = loop.call_later(10, loop.stop)
    t = threading.Thread(target=producer)
    t.start()
    t0 = time.monotonic()
    loop.run_forever()
    t.join()
    guard.cancel()
    assert out == ["woke"]
    assert time.monotonic() - t0 < 5


def test_many_producers_no_lost_callbacks(loop):
    producers, per = 4, 5000
    total = producers * per
    count = 0

    def cb():
        nonlocal count
        count += 1
        if count == total:
            loop.stop()

    def produce():
        for i in range(per):
            loop.call_soon_threadsafe(cb)
            if i % 500 == 0:
                time.sleep(0.0005)  # let the loop fall asleep now and then

    guard = loop.call_later(30, loop.stop)
    threads = [threading.Thread(target=produce) for _ in range(producers)]
    for t in threads:
        t.start()
    loop.run_forever()
    for t in threads:
        t.join()
    guard.cancel()
    assert count == total


def test_repeated_sleep_wake_cycles(loop):
    """Each round the loop goes to sleep, then one threadsafe call wakes it."""
    rounds = 200
    done = []

    def one_round(i):
        fut = loop.create_future()

        def later():
            time.sleep(0.0002)
            loop.call_soon_threadsafe(fut.set_result, i)

        threading.Thread(target=later).start()
        return fut

    async def main():
        for i in range(rounds):
            done.append(await one_round(i))

    guard = loop.call_later(60, loop.stop)
    loop.run_until_complete(main())
    guard.cancel()
    assert done == list(range(rounds))


def test_threadsafe_from_loop_thread_keeps_order(loop):
    out = []

    def cb():
        loop.call_soon(out.append, 1)
        loop.call_soon_threadsafe(out.append, 2)
        loop.call_soon(out.append, 3)

    loop.call_soon(cb)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert out == [1, 2, 3]


def test_threadsafe_returns_handle_and_cancel(loop):
    out = []
    h = loop.call_soon_threadsafe(out.append, 1)
    h.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == []
