package io.statebackend.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.statebackend.NativeMemoryBackend;
import io.statebackend.NativeRocksDBBackend;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.state.v2.ListState;
import org.apache.flink.api.common.state.v2.ListStateDescriptor;
import org.apache.flink.api.common.state.v2.MapState;
import org.apache.flink.api.common.state.v2.MapStateDescriptor;
import org.apache.flink.api.common.state.v2.StateIterator;
import org.apache.flink.api.common.state.v2.ValueState;
import org.apache.flink.api.common.state.v2.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.BasicTypeInfo;
import org.apache.flink.api.common.typeutils.base.IntSerializer;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.apache.flink.runtime.asyncprocessing.EpochManager;
import org.apache.flink.runtime.asyncprocessing.RecordContext;
import org.apache.flink.runtime.asyncprocessing.StateExecutionController;
import org.apache.flink.runtime.asyncprocessing.declare.DeclarationManager;
import org.apache.flink.runtime.mailbox.SyncMailboxExecutor;
import org.apache.flink.runtime.operators.testutils.MockEnvironment;
import org.apache.flink.runtime.state.AsyncKeyedStateBackend;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.runtime.state.KeyedStateBackendParametersImpl;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;
import org.apache.flink.util.IOUtils;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Our asynchronous keyed backend under Flink's controller, beyond Flink's V2 suite: requests that
 * fail (a key outside the backend's key groups) reach the caller or Flink's exception handler with
 * the backend's message instead of hanging, and iterations keep their key's contents when the
 * controller has moved on to another key before their callbacks run.
 */
class NativeAsyncKeyedStateBackendTest {
    private static final int MAX_PARALLELISM = 2;

    @TempDir Path checkpoints;

    private final MockEnvironment env = MockEnvironment.builder().build();
    private final List<String> asyncFailures = new ArrayList<>();
    private AsyncKeyedStateBackend<Integer> backend;
    private StateExecutionController<Integer> controller;

    @AfterEach
    void close() throws Exception {
        if (backend != null) {
            IOUtils.closeQuietly(backend);
            backend.dispose();
        }
        env.close();
    }

    private void open(StateBackend stateBackend, KeyGroupRange keyGroups, int batchSize)
            throws Exception {
        backend =
                stateBackend.createAsyncKeyedStateBackend(
                        new KeyedStateBackendParametersImpl<>(
                                env,
                                new JobID(),
                                "test",
                                IntSerializer.INSTANCE,
                                MAX_PARALLELISM,
                                keyGroups,
                                env.getTaskKvStateRegistry(),
                                TtlTimeProvider.DEFAULT,
                                new UnregisteredMetricsGroup(),
                                (name, value) -> {},
                                Collections.emptyList(),
                                new CloseableRegistry(),
                                1.0d));
        assertThat(backend).isInstanceOf(NativeAsyncKeyedStateBackend.class);
        controller =
                new StateExecutionController<>(
                        new SyncMailboxExecutor(),
                        (message, error) -> asyncFailures.add(message + ": " + error.getMessage()),
                        backend.createStateExecutor(),
                        new DeclarationManager(),
                        EpochManager.ParallelMode.SERIAL_BETWEEN_EPOCH,
                        MAX_PARALLELISM,
                        batchSize,
                        -1L,
                        1000,
                        null,
                        new UnregisteredMetricsGroup());
        backend.setup(controller);
    }

    private static int keyInKeyGroup(int keyGroup) {
        for (int key = 0; ; key++) {
            if (KeyGroupRangeAssignment.assignToKeyGroup(key, MAX_PARALLELISM) == keyGroup) {
                return key;
            }
        }
    }

    @Test
    void failingRequestsReachTheCallerOrFlinksHandler() throws Exception {
        open(new NativeMemoryBackend(), KeyGroupRange.of(0, 0), 1);
        ValueState<Integer> state =
                backend.getOrCreateKeyedState(
                        VoidNamespace.INSTANCE,
                        VoidNamespaceSerializer.INSTANCE,
                        new ValueStateDescriptor<>("v", BasicTypeInfo.INT_TYPE_INFO));
        RecordContext<Integer> outside = controller.buildContext("r", keyInKeyGroup(1));
        outside.retain();
        controller.setCurrentContext(outside);

        // A synchronous call throws, as V1 does.
        assertThatThrownBy(() -> state.update(1))
                .hasMessageContaining("Key group 1 is not in KeyGroupRange");
        // An asynchronous one (run at once: batches of 1) goes to Flink's handler, which fails
        // the task in a job; its record never completes, so nothing here waits for it.
        state.asyncUpdate(1);
        assertThat(asyncFailures)
                .singleElement()
                .asString()
                .contains("State request VALUE_UPDATE failed on the native keyed state backend")
                .contains("Key group 1 is not in KeyGroupRange");
    }

    @Test
    void iterationsKeepTheirKeyAfterTheControllerMovedOn() throws Exception {
        open(
                new NativeRocksDBBackend(checkpoints.toUri().toString()),
                KeyGroupRange.of(0, MAX_PARALLELISM - 1),
                100);
        ListState<Integer> list =
                backend.getOrCreateKeyedState(
                        VoidNamespace.INSTANCE,
                        VoidNamespaceSerializer.INSTANCE,
                        new ListStateDescriptor<>("l", BasicTypeInfo.INT_TYPE_INFO));
        MapState<Integer, Integer> map =
                backend.getOrCreateKeyedState(
                        VoidNamespace.INSTANCE,
                        VoidNamespaceSerializer.INSTANCE,
                        new MapStateDescriptor<>(
                                "m", BasicTypeInfo.INT_TYPE_INFO, BasicTypeInfo.INT_TYPE_INFO));
        Map<Integer, StateIterator<Integer>> lists = new TreeMap<>();
        Map<Integer, StateIterator<Integer>> mapKeys = new TreeMap<>();
        List<RecordContext<Integer>> records = new ArrayList<>();
        for (int key = 0; key < 10; key++) {
            RecordContext<Integer> record = controller.buildContext("r" + key, key);
            record.retain();
            records.add(record);
            controller.setCurrentContext(record);
            int k = key;
            list.asyncAdd(k);
            list.asyncAdd(k * 100);
            map.asyncPut(k, k);
            list.asyncGet().thenAccept(it -> lists.put(k, it));
            map.asyncKeys().thenAccept(it -> mapKeys.put(k, it));
        }
        // One batch runs everything (each pending request holds its record); the iterators are
        // read after it, the backend on the last key.
        records.forEach(RecordContext::release);
        controller.drainInflightRecords(0);
        assertThat(asyncFailures).isEmpty();
        assertThat(lists).hasSize(10);
        for (int key = 0; key < 10; key++) {
            List<Integer> listSeen = new ArrayList<>();
            lists.get(key).onNext((Integer e) -> listSeen.add(e));
            List<Integer> keysSeen = new ArrayList<>();
            mapKeys.get(key).onNext((Integer e) -> keysSeen.add(e));
            assertThat(listSeen).as("list of key %s", key).containsExactly(key, key * 100);
            assertThat(keysSeen).as("map keys of key %s", key).containsExactly(key);
        }
    }
}
