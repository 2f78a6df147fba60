package io.statebackend.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.statebackend.StateBackendException;
import io.statebackend.StateBackendPoisonedException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The registered buffer channels at the native boundary: whatever Java passes (an unknown or
 * released channel, a closed backend, heap or overlapping buffers, lengths past the buffer), the
 * call throws a Java exception instead of reading or writing memory it should not; and threads with
 * their own channels use one backend at the same time.
 */
class NativeBridgeChannelTest {
    @TempDir java.nio.file.Path dir;

    @BeforeAll
    static void load() {
        NativeLibrary.load();
    }

    private long open(String kind) {
        return NativeBridge.open(
                kind,
                128,
                0,
                127,
                Long.MAX_VALUE,
                dir.toString(),
                new String[0],
                0,
                new RestoreSource[0]);
    }

    private static int put(ByteBuffer in, int at, String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        in.put(at, bytes);
        return bytes.length;
    }

    private static String read(ByteBuffer out, int len) {
        byte[] bytes = new byte[len];
        out.get(0, bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }

    @ParameterizedTest
    @ValueSource(strings = {"memory", "rocksdb"})
    void misuseThrowsJavaExceptions(String kind) {
        long handle = open(kind);
        int state = NativeBridge.registerState(handle, "v", NativeBridge.KIND_VALUE, new byte[0]);
        ByteBuffer in = ByteBuffer.allocateDirect(64);
        ByteBuffer out = ByteBuffer.allocateDirect(4);
        assertThatThrownBy(() -> NativeBridge.valueGet(handle, 0, state, 1, 0, 0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("unknown buffer channel");
        assertThatThrownBy(() -> NativeBridge.bind(handle, -1, ByteBuffer.allocate(8), out))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("not a direct buffer");
        assertThatThrownBy(() -> NativeBridge.bind(handle, -1, in, in.slice(10, 20)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("overlap");
        int channel = NativeBridge.bind(handle, -1, in, out);

        int keyLen = put(in, 0, "key");
        int valueLen = put(in, keyLen, "a value");
        NativeBridge.valuePut(handle, channel, state, 1, keyLen, 0, valueLen);
        assertThatThrownBy(() -> NativeBridge.valuePut(handle, channel, state, 1, keyLen, 0, 62))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("exceed the input buffer");
        assertThatThrownBy(() -> NativeBridge.valueGet(handle, channel, state, 1, -1, 0))
                .isInstanceOf(IllegalArgumentException.class);
        // The value does not fit the 4-byte output: the call says how much it needs.
        int r = NativeBridge.valueGet(handle, channel, state, 1, keyLen, 0);
        assertThat(NativeBridge.neededCapacity(r)).isEqualTo(valueLen);
        ByteBuffer bigger = ByteBuffer.allocateDirect(64);
        assertThat(NativeBridge.bind(handle, channel, in, bigger)).isEqualTo(channel);
        assertThat(read(bigger, NativeBridge.valueGet(handle, channel, state, 1, keyLen, 0)))
                .isEqualTo("a value");

        NativeBridge.unbind(handle, channel);
        assertThatThrownBy(() -> NativeBridge.valueGet(handle, channel, state, 1, keyLen, 0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("unknown buffer channel");
        assertThatThrownBy(() -> NativeBridge.unbind(handle, channel))
                .isInstanceOf(IllegalArgumentException.class);
        // The released slot is reused under another id: the old id stays unknown.
        int again = NativeBridge.bind(handle, -1, in, bigger);
        assertThat(again).isNotEqualTo(channel);
        assertThatThrownBy(() -> NativeBridge.valueGet(handle, channel, state, 1, keyLen, 0))
                .isInstanceOf(IllegalArgumentException.class);
        assertThat(NativeBridge.valueGet(handle, again, state, 1, keyLen, 0)).isEqualTo(valueLen);

        NativeBridge.close(handle);
        assertThatThrownBy(() -> NativeBridge.valueGet(handle, again, state, 1, keyLen, 0))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("closed");
        assertThatThrownBy(() -> NativeBridge.bind(handle, -1, in, bigger))
                .isInstanceOf(IllegalStateException.class);
        NativeBridge.unbind(handle, again); // nothing: closing released every channel
        NativeBridge.close(handle);
    }

    @Test
    void anUnknownBackendKindIsNamedInTheError() {
        assertThatThrownBy(() -> open("heap"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("unknown backend kind 'heap'");
    }

    /**
     * A native panic while a call holds the backend throws a Java exception (the JVM lives on); the
     * backend is then poisoned, like SB_POISONED in C: every later call on it throws {@link
     * StateBackendPoisonedException}, and closing it still works.
     */
    @ParameterizedTest
    @ValueSource(strings = {"memory", "rocksdb"})
    void aPanicPoisonsTheBackend(String kind) {
        long handle = open(kind);
        int state = NativeBridge.registerState(handle, "v", NativeBridge.KIND_VALUE, new byte[0]);
        ByteBuffer in = ByteBuffer.allocateDirect(64);
        ByteBuffer out = ByteBuffer.allocateDirect(64);
        int channel = NativeBridge.bind(handle, -1, in, out);
        assertThatThrownBy(() -> NativeBridge.debugPanic(handle))
                .isInstanceOf(StateBackendException.class)
                .isNotInstanceOf(StateBackendPoisonedException.class)
                .hasMessageContaining("native panic");
        int keyLen = put(in, 0, "key");
        assertThatThrownBy(() -> NativeBridge.valueGet(handle, channel, state, 1, keyLen, 0))
                .isInstanceOf(StateBackendPoisonedException.class)
                .hasMessageContaining(
                        "the state backend is unusable after an earlier native panic");
        assertThatThrownBy(() -> NativeBridge.numEntries(handle))
                .isInstanceOf(StateBackendPoisonedException.class);
        NativeBridge.close(handle);
        assertThatThrownBy(() -> NativeBridge.numEntries(handle))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("closed");
    }

    /**
     * Threads write and read their own keys through their own channels on one backend while another
     * thread binds and releases channels: every read sees its own thread's last write.
     */
    @ParameterizedTest
    @ValueSource(strings = {"memory", "rocksdb"})
    void threadsShareABackendThroughTheirOwnChannels(String kind) throws Exception {
        long handle = open(kind);
        int state = NativeBridge.registerState(handle, "v", NativeBridge.KIND_VALUE, new byte[0]);
        int threads = 4;
        int rounds = 20_000;
        CountDownLatch start = new CountDownLatch(1);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> all = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            String prefix = "thread-" + t + "-";
            all.add(
                    new Thread(
                            () -> {
                                ByteBuffer in = ByteBuffer.allocateDirect(64);
                                ByteBuffer out = ByteBuffer.allocateDirect(64);
                                try {
                                    start.await();
                                    int channel = NativeBridge.bind(handle, -1, in, out);
                                    for (int i = 0; i < rounds; i++) {
                                        int key = i % 50;
                                        int keyLen = put(in, 0, prefix + key);
                                        String value = prefix + i;
                                        int valueLen = put(in, keyLen, value);
                                        NativeBridge.valuePut(
                                                handle, channel, state, key, keyLen, 0, valueLen);
                                        int r =
                                                NativeBridge.valueGet(
                                                        handle, channel, state, key, keyLen, 0);
                                        assertThat(read(out, r)).isEqualTo(value);
                                    }
                                    NativeBridge.unbind(handle, channel);
                                } catch (Throwable e) {
                                    failure.compareAndSet(null, e);
                                }
                            }));
        }
        all.add(
                new Thread(
                        () -> {
                            try {
                                start.await();
                                for (int i = 0; i < rounds / 10; i++) {
                                    int c =
                                            NativeBridge.bind(
                                                    handle,
                                                    -1,
                                                    ByteBuffer.allocateDirect(8),
                                                    ByteBuffer.allocateDirect(8));
                                    NativeBridge.unbind(handle, c);
                                }
                            } catch (Throwable e) {
                                failure.compareAndSet(null, e);
                            }
                        }));
        all.forEach(Thread::start);
        start.countDown();
        for (Thread t : all) {
            t.join();
        }
        NativeBridge.close(handle);
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
    }
}
