package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.statebackend.internal.NativeKeyedStateBackend;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.base.StringSerializer;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.checkpoint.SavepointType;
import org.apache.flink.runtime.state.CheckpointStorageLocationReference;
import org.apache.flink.runtime.state.IncrementalKeyedStateHandle.HandleAndLocalPath;
import org.apache.flink.runtime.state.IncrementalRemoteKeyedStateHandle;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.runtime.state.KeyGroupsStateHandle;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.PlaceholderStreamStateHandle;
import org.apache.flink.runtime.state.SharedStateRegistry;
import org.apache.flink.runtime.state.SharedStateRegistryImpl;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.runtime.state.filesystem.FileStateHandle;
import org.apache.flink.util.FileUtils;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Incremental checkpoints of {@link NativeRocksDBBackend} through Flink's SPI: {@link
 * IncrementalRemoteKeyedStateHandle}s whose unchanged SST files are placeholders for the last
 * completed checkpoint's, registered and restored the way Flink's JobManager and tasks do.
 */
class IncrementalCheckpointTest {
    private static final int KEYS = 20_000;
    private static final ValueStateDescriptor<String> VALUE =
            new ValueStateDescriptor<>("value", StringSerializer.INSTANCE);
    private static final KeyGroupRange ALL =
            KeyGroupRange.of(0, BackendHarness.MAX_PARALLELISM - 1);

    private Path checkpoints;
    private BackendHarness harness;

    @BeforeEach
    void setUp() throws Exception {
        // Not @TempDir: see ExactlyOnceMiniClusterTest.
        checkpoints = Files.createTempDirectory("incremental-");
        harness =
                new BackendHarness(new NativeRocksDBBackend(checkpoints.toUri().toString(), true));
    }

    @AfterEach
    void tearDown() throws Exception {
        harness.close();
        FileUtils.deleteDirectoryQuietly(checkpoints.toFile());
    }

    private static ValueState<String> value(NativeKeyedStateBackend<Integer> keyed)
            throws Exception {
        return keyed.getPartitionedState(
                VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, VALUE);
    }

    /** Sets every key {@code k} with {@code k % every == 0} to a 1 KiB value of round {@code r}. */
    private static void write(NativeKeyedStateBackend<Integer> keyed, int round, int every)
            throws Exception {
        ValueState<String> state = value(keyed);
        for (int k = 0; k < KEYS; k += every) {
            keyed.setCurrentKey(k);
            state.update(expected(k, round));
        }
    }

    private static String expected(int key, int round) {
        StringBuilder b = new StringBuilder(1024);
        b.append(key).append('/').append(round).append('/');
        long x = key * 0x9E3779B97F4A7C15L + round;
        while (b.length() < 1024) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            b.append(Long.toString(x & Long.MAX_VALUE, 36));
        }
        return b.toString();
    }

    /** Checks the keys of {@code range}: rounds as written by {@code write(.., 0, 1)} then 1%. */
    private static void verify(NativeKeyedStateBackend<Integer> keyed, KeyGroupRange range)
            throws Exception {
        ValueState<String> state = value(keyed);
        int checked = 0;
        for (int k = 0; k < KEYS; k++) {
            if (!range.contains(
                    KeyGroupRangeAssignment.assignToKeyGroup(k, BackendHarness.MAX_PARALLELISM))) {
                continue;
            }
            keyed.setCurrentKey(k);
            assertThat(state.value()).as("key %d", k).isEqualTo(expected(k, k % 100 == 0 ? 1 : 0));
            checked++;
        }
        assertThat(checked).isPositive();
    }

    private static long placeholders(IncrementalRemoteKeyedStateHandle handle) {
        return handle.getSharedState().stream()
                .filter(f -> f.getHandle() instanceof PlaceholderStreamStateHandle)
                .count();
    }

    @Test
    void secondCheckpointUploadsOnlyChangedFilesAndRestores() throws Exception {
        NativeKeyedStateBackend<Integer> keyed = harness.create();
        write(keyed, 0, 1);
        KeyedStateHandle first = harness.snapshot(keyed, 1);
        assertThat(first).isInstanceOf(IncrementalRemoteKeyedStateHandle.class);
        IncrementalRemoteKeyedStateHandle one = (IncrementalRemoteKeyedStateHandle) first;
        assertThat(placeholders(one)).isZero();
        assertThat(one.getSharedState()).isNotEmpty();
        assertThat(one.getSharedState())
                .allSatisfy(f -> assertThat(f.getLocalPath()).endsWith(".sst"));
        keyed.notifyCheckpointComplete(1);

        write(keyed, 1, 100);
        IncrementalRemoteKeyedStateHandle two =
                (IncrementalRemoteKeyedStateHandle) harness.snapshot(keyed, 2);
        keyed.dispose();
        // The first checkpoint's SST files are referenced, not uploaded again.
        assertThat(placeholders(two)).isEqualTo(one.getSharedState().size());
        assertThat(two.getCheckpointedSize()).isLessThan(one.getCheckpointedSize() / 5);

        // As the JobManager does: register, which replaces placeholders by the stored handles.
        SharedStateRegistry registry = new SharedStateRegistryImpl();
        one.registerSharedStates(registry, 1);
        two.registerSharedStates(registry, 2);
        assertThat(placeholders(two)).isZero();

        NativeKeyedStateBackend<Integer> restored = harness.create(ALL, List.of(two));
        verify(restored, ALL);
        // The first checkpoint after a restore is self-contained (NO_CLAIM restores work).
        IncrementalRemoteKeyedStateHandle three =
                (IncrementalRemoteKeyedStateHandle) harness.snapshot(restored, 3);
        assertThat(placeholders(three)).isZero();
        restored.dispose();

        // Rescaling: two subtasks, each from the handle's intersection with its range.
        for (int i = 0; i < 2; i++) {
            KeyGroupRange range =
                    KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex(
                            BackendHarness.MAX_PARALLELISM, 2, i);
            NativeKeyedStateBackend<Integer> part =
                    harness.create(range, List.of(two.getIntersection(range)));
            verify(part, range);
            assertThat(part.getKeys("value", VoidNamespace.INSTANCE).count())
                    .isLessThan(KEYS)
                    .isPositive();
            part.dispose();
        }
        registry.close();
    }

    @Test
    void abortedCheckpointsAreNotReferencedAndSavepointsAreSelfContained() throws Exception {
        NativeKeyedStateBackend<Integer> keyed = harness.create();
        write(keyed, 0, 1);
        harness.snapshot(keyed, 1);
        keyed.notifyCheckpointAborted(1);
        write(keyed, 1, 100);
        IncrementalRemoteKeyedStateHandle two =
                (IncrementalRemoteKeyedStateHandle) harness.snapshot(keyed, 2);
        assertThat(placeholders(two)).isZero();
        keyed.notifyCheckpointComplete(2);

        KeyedStateHandle savepoint =
                harness.snapshot(
                        keyed,
                        3,
                        CheckpointOptions.forConfig(
                                SavepointType.savepoint(SavepointFormatType.NATIVE),
                                CheckpointStorageLocationReference.getDefault(),
                                true,
                                false,
                                Long.MAX_VALUE));
        assertThat(savepoint).isInstanceOf(KeyGroupsStateHandle.class);
        keyed.dispose();
        NativeKeyedStateBackend<Integer> restored = harness.create(ALL, List.of(savepoint));
        verify(restored, ALL);
        restored.dispose();
    }

    @Test
    void corruptedOrMissingFileFailsTheRestoreNamingFileAndOffset() throws Exception {
        NativeKeyedStateBackend<Integer> keyed = harness.create();
        write(keyed, 0, 1);
        write(keyed, 1, 100);
        IncrementalRemoteKeyedStateHandle handle =
                (IncrementalRemoteKeyedStateHandle) harness.snapshot(keyed, 1);
        keyed.dispose();
        List<HandleAndLocalPath> files = new ArrayList<>(handle.getSharedState());
        files.sort(Comparator.comparingLong(HandleAndLocalPath::getStateSize).reversed());
        FileStateHandle largest = (FileStateHandle) files.get(0).getHandle();
        Path sst = Path.of(largest.getFilePath().toUri());
        long offset = (1 << 20) + 4321;
        assertThat(Files.size(sst)).isGreaterThan(offset);
        byte original;
        try (RandomAccessFile f = new RandomAccessFile(sst.toFile(), "rw")) {
            f.seek(offset);
            original = f.readByte();
            f.seek(offset);
            f.writeByte(original ^ 0x20);
        }
        assertThatThrownBy(() -> harness.create(ALL, List.of(handle)))
                .hasStackTraceContaining(sst.toString())
                .hasStackTraceContaining("offset " + (1 << 20))
                .hasStackTraceContaining("checksum mismatch");

        // Restored byte, file gone: the restore names it too.
        try (RandomAccessFile f = new RandomAccessFile(sst.toFile(), "rw")) {
            f.seek(offset);
            f.writeByte(original);
        }
        NativeKeyedStateBackend<Integer> ok = harness.create(ALL, List.of(handle));
        verify(ok, ALL);
        ok.dispose();
        Files.delete(sst);
        assertThatThrownBy(() -> harness.create(ALL, List.of(handle)))
                .hasStackTraceContaining(sst.getFileName().toString());
    }
}
