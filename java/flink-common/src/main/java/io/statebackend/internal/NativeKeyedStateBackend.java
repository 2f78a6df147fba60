package io.statebackend.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Optional;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.concurrent.RunnableFuture;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;
import org.apache.flink.api.common.ExecutionConfig;
import org.apache.flink.api.common.state.AggregatingStateDescriptor;
import org.apache.flink.api.common.state.ReducingStateDescriptor;
import org.apache.flink.api.common.state.State;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.checkpoint.SavepointType;
import org.apache.flink.runtime.checkpoint.SnapshotType;
import org.apache.flink.runtime.query.TaskKvStateRegistry;
import org.apache.flink.runtime.state.CheckpointStreamFactory;
import org.apache.flink.runtime.state.DoneFuture;
import org.apache.flink.runtime.state.HeapPriorityQueuesManager;
import org.apache.flink.runtime.state.InternalKeyContext;
import org.apache.flink.runtime.state.KeyExtractorFunction;
import org.apache.flink.runtime.state.KeyGroupedInternalPriorityQueue;
import org.apache.flink.runtime.state.Keyed;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.PriorityComparable;
import org.apache.flink.runtime.state.PriorityComparator;
import org.apache.flink.runtime.state.SavepointResources;
import org.apache.flink.runtime.state.SnapshotExecutionType;
import org.apache.flink.runtime.state.SnapshotResult;
import org.apache.flink.runtime.state.SnapshotStrategyRunner;
import org.apache.flink.runtime.state.StateSnapshotTransformer;
import org.apache.flink.runtime.state.StateSnapshotTransformer.StateSnapshotTransformFactory;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueElement;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSetFactory;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSnapshotRestoreWrapper;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueStateSnapshot;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;
import org.apache.flink.util.FlinkRuntimeException;
import org.apache.flink.util.StateMigrationException;

/**
 * A keyed state backend whose state lives in one native backend instance (memory, fs or RocksDB)
 * owning this subtask's key groups. Keys and namespaces are serialized with Flink's serializers;
 * the native side sees bytes.
 *
 * <p>Timers: with native timers (the RocksDB backend's default, {@code
 * state.backend.rocksdb.timer-service.factory: ROCKSDB}) each timer queue is a native sorted set
 * ({@link NativeTimerQueue}), part of the native state: in every snapshot, rescaled with it, and in
 * canonical savepoints as Flink's priority queue states. Otherwise ({@code HEAP}, and the Memory
 * and Fs backends) Flink's heap priority queues ({@link HeapPriorityQueueSetFactory}), which Flink
 * writes into raw keyed state with every checkpoint and native savepoint ({@link
 * #requiresLegacySynchronousTimerSnapshots}), as it does for its RocksDB backend with heap timers.
 */
public final class NativeKeyedStateBackend<K> extends FlinkKeyedStateBackend<K> {
    private final NativeHandle handle;
    private final NativeAccess access;
    private final String description;
    private final HeapPriorityQueueSetFactory priorityQueueFactory;
    private final NativeSnapshotStrategy snapshotStrategy;

    /**
     * Checkpoints of the RocksDB backend's files, incremental or full; null for the heap backends,
     * whose checkpoints are full snapshots streamed in the common format.
     */
    private final NativeIncrementalSnapshotStrategy fileStrategy;

    /**
     * Flink's snapshot transformers by native state id (state TTL's {@code cleanupFullSnapshot}
     * drops expired values from full snapshots). Task thread only.
     */
    private final Map<Integer, SnapshotTransform> snapshotTransforms = new HashMap<>();

    private final Map<String, AbstractNativeState<K, ?, ?>> states = new HashMap<>();
    private final Map<String, HeapPriorityQueueSnapshotRestoreWrapper<?>> queues = new HashMap<>();
    private final HeapPriorityQueuesManager queuesManager;

    /** Whether timer queues are native sorted sets (else Flink's heap queues). */
    private final boolean nativeTimers;

    private final Map<String, NativeTimerQueue<?>> timerQueues = new HashMap<>();

    /** The accessor of the native timer queues (task thread), created with the first. */
    private NativeAccess timerAccess;

    private K serializedKey;

    /** Metrics (gauges in the operator's group): see {@link #registerMetrics}. */
    private final NativeMetrics.CheckpointDurations checkpointDurations =
            new NativeMetrics.CheckpointDurations();

    private NativeMetrics metrics;

    NativeKeyedStateBackend(
            NativeHandle handle,
            NativeIncrementalSnapshotStrategy.Mode fileCheckpoints,
            String description,
            TaskKvStateRegistry kvStateRegistry,
            TypeSerializer<K> keySerializer,
            ClassLoader userCodeClassLoader,
            ExecutionConfig executionConfig,
            TtlTimeProvider ttlTimeProvider,
            ReadableConfig trackingOptions,
            MetricGroup metricGroup,
            CloseableRegistry cancelStreamRegistry,
            InternalKeyContext<K> keyContext,
            String backendType,
            HeapPriorityQueueSetFactory priorityQueueFactory,
            boolean nativeTimers) {
        super(
                kvStateRegistry,
                keySerializer,
                userCodeClassLoader,
                executionConfig,
                ttlTimeProvider,
                trackingOptions,
                metricGroup,
                cancelStreamRegistry,
                keyContext,
                backendType);
        this.handle = handle;
        this.access = new NativeAccess(handle);
        this.description = description;
        this.priorityQueueFactory = priorityQueueFactory;
        this.nativeTimers = nativeTimers;
        this.snapshotStrategy =
                new NativeSnapshotStrategy(
                        handle, keyGroupRange, this::snapshotFilters, checkpointDurations);
        this.fileStrategy =
                fileCheckpoints == null
                        ? null
                        : new NativeIncrementalSnapshotStrategy(
                                handle, keyGroupRange, fileCheckpoints, checkpointDurations);
        this.queuesManager =
                new HeapPriorityQueuesManager(
                        queues, priorityQueueFactory, keyGroupRange, numberOfKeyGroups);
    }

    /** Registers this backend's metrics in {@code operatorGroup} ({@link NativeMetrics}). */
    void registerMetrics(MetricGroup operatorGroup) {
        metrics = new NativeMetrics(handle, operatorGroup, checkpointDurations);
        states.forEach((name, state) -> metrics.stateRegistered(state.stateId, name));
        timerQueues.forEach((name, queue) -> metrics.stateRegistered(queue.stateId(), name));
    }

    /** Restores canonical savepoints (any Flink backend's) into this backend. */
    void restoreCanonical(Collection<KeyedStateHandle> handles) throws Exception {
        new CanonicalRestore<>(
                        handle,
                        keyGroupRange,
                        numberOfKeyGroups,
                        userCodeClassLoader,
                        keySerializer,
                        priorityQueueFactory,
                        queues,
                        nativeTimers)
                .restore(handles);
    }

    NativeAccess access() {
        return access;
    }

    /** The shared memory budget this backend runs in (size 0: a budget of its own). */
    SlotMemory memory() {
        return handle.memory();
    }

    /** A private access for a thread other than the task's (queryable state). */
    NativeAccess newAccess() {
        return new NativeAccess(handle);
    }

    @Override
    public void setCurrentKey(K newKey) {
        super.setCurrentKey(newKey);
        serializeKey(newKey);
    }

    /** Serializes the current key again if it was set by other means than setCurrentKey. */
    void refreshKey() {
        K current = getCurrentKey();
        if (current != serializedKey) {
            serializeKey(current);
        }
    }

    private void serializeKey(K key) {
        // Not serialized until it is (the serializer may fail half-way).
        serializedKey = null;
        try {
            access.setKey(key, keySerializer, getCurrentKeyGroupIndex());
            serializedKey = key;
        } catch (IOException e) {
            throw new UncheckedIOException("serializing the key " + key, e);
        }
    }

    @Override
    public void setCurrentKeyGroupIndex(int currentKeyGroupIndex) {
        super.setCurrentKeyGroupIndex(currentKeyGroupIndex);
        serializedKey = null;
    }

    // ---- states ------------------------------------------------------------------------

    static int nativeKind(StateDescriptor.Type type) {
        switch (type) {
            case VALUE:
            case REDUCING:
            case AGGREGATING:
                return NativeBridge.KIND_VALUE;
            case LIST:
                return NativeBridge.KIND_LIST;
            case MAP:
                return NativeBridge.KIND_MAP;
            default:
                throw new UnsupportedOperationException(
                        "state type " + type + " is not supported by the native backend");
        }
    }

    @Override
    @SuppressWarnings("unchecked")
    public <N, SV, SEV, S extends State, IS extends S> IS createOrUpdateInternalState(
            TypeSerializer<N> namespaceSerializer,
            StateDescriptor<S, SV> stateDesc,
            StateSnapshotTransformFactory<SEV> snapshotTransformFactory)
            throws Exception {
        String name = stateDesc.getName();
        StateDescriptor.Type type = stateDesc.getType();
        int kind = nativeKind(type);
        TypeSerializer<SV> valueSerializer = stateDesc.getSerializer();

        AbstractNativeState<K, N, SV> existing = (AbstractNativeState<K, N, SV>) states.get(name);
        if (existing == null) {
            byte[] restored = NativeBridge.restoredState(handle.id(), name);
            if (restored != null) {
                if (restored[0] != kind) {
                    throw new IllegalStateException(
                            "state '" + name + "' was restored with another kind than " + type);
                }
                byte[] restoredMetadata = Arrays.copyOfRange(restored, 1, restored.length);
                StateMetadata.Resolution resolved =
                        StateMetadata.checkCompatible(
                                name,
                                restoredMetadata,
                                type,
                                userCodeClassLoader,
                                keySerializer,
                                namespaceSerializer,
                                valueSerializer);
                namespaceSerializer = (TypeSerializer<N>) resolved.namespaceSerializer;
                valueSerializer = (TypeSerializer<SV>) resolved.valueSerializer;
                if (resolved.migrateFrom != null) {
                    // The state keeps its restored metadata until its entries are rewritten.
                    StateMigration.run(
                            handle,
                            NativeBridge.registerState(handle.id(), name, kind, restoredMetadata),
                            name,
                            type,
                            resolved.migrateFrom,
                            valueSerializer,
                            resolved.userKeysChange,
                            ttlTimeProvider.currentTimestamp());
                }
            }
        }
        byte[] metadata =
                StateMetadata.encode(type, keySerializer, namespaceSerializer, valueSerializer);
        int id = NativeBridge.registerState(handle.id(), name, kind, metadata);
        snapshotTransforms.put(id, new SnapshotTransform(kind, snapshotTransformFactory));
        if (metrics != null) {
            metrics.stateRegistered(id, name);
        }
        if (existing != null) {
            existing.update(namespaceSerializer, valueSerializer);
            return (IS) existing;
        }
        AbstractNativeState<K, N, ?> state;
        switch (type) {
            case VALUE:
                state =
                        new NativeValueState<>(
                                this,
                                id,
                                name,
                                namespaceSerializer,
                                valueSerializer,
                                ((ValueStateDescriptor<SV>) stateDesc).getDefaultValue());
                break;
            case LIST:
                state =
                        new NativeListState<>(
                                this,
                                id,
                                name,
                                namespaceSerializer,
                                (TypeSerializer) valueSerializer);
                break;
            case MAP:
                state =
                        new NativeMapState<>(
                                this,
                                id,
                                name,
                                namespaceSerializer,
                                (TypeSerializer) valueSerializer);
                break;
            case REDUCING:
                state =
                        new NativeReducingState<>(
                                this,
                                id,
                                name,
                                namespaceSerializer,
                                valueSerializer,
                                ((ReducingStateDescriptor<SV>) stateDesc).getReduceFunction());
                break;
            case AGGREGATING:
                state =
                        new NativeAggregatingState<>(
                                this,
                                id,
                                name,
                                namespaceSerializer,
                                valueSerializer,
                                ((AggregatingStateDescriptor<?, SV, ?>) stateDesc)
                                        .getAggregateFunction());
                break;
            default:
                throw new UnsupportedOperationException("state type " + type);
        }
        states.put(name, state);
        return (IS) state;
    }

    /** A registered state's kind and snapshot transformer factory. */
    private static final class SnapshotTransform {
        final int kind;
        final StateSnapshotTransformFactory<?> factory;

        SnapshotTransform(int kind, StateSnapshotTransformFactory<?> factory) {
            this.kind = kind;
            this.factory = factory;
        }
    }

    /**
     * The value filters of a snapshot taken now, by native state id (null: none), or null if no
     * state has one. Created in the synchronous phase: a TTL transformer takes the current time
     * when it is created, so values expired at the checkpoint are left out.
     */
    private NativeSnapshotStrategy.ValueFilter[] snapshotFilters() {
        NativeSnapshotStrategy.ValueFilter[] filters = null;
        for (Map.Entry<Integer, SnapshotTransform> e : snapshotTransforms.entrySet()) {
            SnapshotTransform t = e.getValue();
            if (t.factory == null) {
                continue;
            }
            Optional<? extends StateSnapshotTransformer<byte[]>> transformer =
                    t.factory.createForSerializedState();
            if (transformer.isEmpty()) {
                continue;
            }
            if (filters == null) {
                int size = Collections.max(snapshotTransforms.keySet()) + 1;
                filters = new NativeSnapshotStrategy.ValueFilter[size];
            }
            filters[e.getKey()] = NativeSnapshotStrategy.ValueFilter.of(t.kind, transformer.get());
        }
        return filters;
    }

    // ---- keys ----------------------------------------------------------------------------

    @Override
    public <N> Stream<K> getKeys(String state, N namespace) {
        return this.<N>keyStream(state, namespace, false).map(t -> t.f0);
    }

    @Override
    public <N> Stream<K> getKeys(List<String> states, N namespace) {
        return states.stream().flatMap(s -> getKeys(s, namespace)).distinct();
    }

    @Override
    public <N> Stream<Tuple2<K, N>> getKeysAndNamespaces(String state) {
        return keyStream(state, null, true);
    }

    @SuppressWarnings("unchecked")
    private <N> Stream<Tuple2<K, N>> keyStream(String stateName, N namespace, boolean all) {
        AbstractNativeState<K, N, ?> state = (AbstractNativeState<K, N, ?>) states.get(stateName);
        int stateId;
        TypeSerializer<N> namespaceSerializer;
        NativeAccess keys = newAccess();
        int nsLen = 0;
        try {
            if (state != null) {
                stateId = state.stateId;
                namespaceSerializer = state.namespaceSerializer;
            } else {
                // A restored state not registered again (yet): its keys are there all the
                // same, read with the namespace serializer it was written with.
                byte[] restored = NativeBridge.restoredState(handle.id(), stateName);
                if (restored == null) {
                    return Stream.empty();
                }
                byte[] metadata = Arrays.copyOfRange(restored, 1, restored.length);
                namespaceSerializer =
                        StateMetadata.restoredNamespaceSerializer(
                                stateName, metadata, userCodeClassLoader);
                stateId = NativeBridge.registerState(handle.id(), stateName, restored[0], metadata);
            }
            keys.startRaw();
            if (!all) {
                nsLen = keys.append(namespaceSerializer, namespace);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        long iterator = NativeBridge.keysOpen(handle.id(), stateId, keys.in(), nsLen, all);
        KeyIterator<K, N> it =
                new KeyIterator<>(
                        iterator, keys, keySerializer.duplicate(), namespaceSerializer.duplicate());
        return StreamSupport.stream(
                        Spliterators.spliteratorUnknownSize(it, Spliterator.ORDERED), false)
                .onClose(it::close);
    }

    /** Reads (key, namespace) pairs from a native key iterator, a batch at a time. */
    private static final class KeyIterator<K, N> implements Iterator<Tuple2<K, N>> {
        private final long iterator;
        private final NativeAccess buffers;
        private final TypeSerializer<K> keySerializer;
        private final TypeSerializer<N> namespaceSerializer;
        private DataInputDeserializer batch;
        private boolean closed;

        KeyIterator(
                long iterator,
                NativeAccess buffers,
                TypeSerializer<K> keySerializer,
                TypeSerializer<N> namespaceSerializer) {
            this.iterator = iterator;
            this.buffers = buffers;
            this.keySerializer = keySerializer;
            this.namespaceSerializer = namespaceSerializer;
        }

        @Override
        public boolean hasNext() {
            if (batch != null && batch.available() > 0) {
                return true;
            }
            if (closed) {
                return false;
            }
            int r;
            do {
                r = NativeBridge.keysNext(iterator, buffers.out());
            } while (buffers.retry(r));
            if (r <= 0) {
                close();
                return false;
            }
            batch = buffers.copyResult(r);
            return true;
        }

        @Override
        public Tuple2<K, N> next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            try {
                K key = read(keySerializer);
                N namespace = read(namespaceSerializer);
                return Tuple2.of(key, namespace);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        private <T> T read(TypeSerializer<T> serializer) throws IOException {
            int len = batch.readInt();
            int start = batch.getPosition();
            T value = serializer.deserialize(batch);
            NativeAccess.skipTo(batch, start + len);
            return value;
        }

        void close() {
            if (!closed) {
                closed = true;
                NativeBridge.keysClose(iterator);
            }
        }
    }

    /**
     * The key serializer a backend restored into native backend {@code id} uses: {@code
     * keySerializer}, or the reconfigured serializer Flink's compatibility check gives for the key
     * serializer the restored states were written with. A key serializer that could read the
     * restored keys only after migration, or not at all, fails the restore with a {@link
     * StateMigrationException}, as in Flink's backends: keys are not migrated.
     */
    static <K> TypeSerializer<K> restoredKeySerializer(
            long id, ClassLoader classLoader, TypeSerializer<K> keySerializer)
            throws IOException, StateMigrationException {
        TypeSerializer<K> resolved = keySerializer;
        for (String name : NativeBridge.stateNames(id)) {
            byte[] restored = NativeBridge.restoredState(id, name);
            // Timer queues record no key serializer (their elements carry the keys).
            if (restored != null && restored[0] != NativeBridge.KIND_SORTED_SET) {
                resolved =
                        StateMetadata.resolveKeySerializer(
                                name,
                                Arrays.copyOfRange(restored, 1, restored.length),
                                classLoader,
                                keySerializer);
            }
        }
        return resolved;
    }

    /**
     * Every read deserializes a fresh object and every write serializes the one given, so the
     * caller may reuse the objects it passes and gets, as with Flink's RocksDB backend.
     */
    @Override
    public boolean isSafeToReuseKVState() {
        return true;
    }

    /**
     * Compacts what the state of {@code descriptor} keeps on disk, now, like Flink's {@code
     * RocksDBKeyedStateBackend#compactState}: the RocksDB backend writes its cache back, flushes
     * and compacts the state's data (tombstones and list appends folded); the Memory and Fs
     * backends have nothing to compact. Does nothing for a state not created in this backend.
     */
    public void compactState(StateDescriptor<?, ?> descriptor) {
        AbstractNativeState<K, ?, ?> state = states.get(descriptor.getName());
        if (state != null) {
            NativeBridge.compactState(handle.id(), state.stateId);
        }
    }

    @Override
    public int numKeyValueStateEntries() {
        return (int) NativeBridge.numEntries(handle.id());
    }

    // ---- timers -----------------------------------------------------------------------------

    @Override
    public <T extends HeapPriorityQueueElement & PriorityComparable<? super T> & Keyed<?>>
            KeyGroupedInternalPriorityQueue<T> create(
                    String stateName, TypeSerializer<T> byteOrderedElementSerializer) {
        return create(stateName, byteOrderedElementSerializer, false);
    }

    @Override
    public <T extends HeapPriorityQueueElement & PriorityComparable<? super T> & Keyed<?>>
            KeyGroupedInternalPriorityQueue<T> create(
                    String stateName,
                    TypeSerializer<T> byteOrderedElementSerializer,
                    boolean allowFutureMetadataUpdates) {
        try {
            if (!nativeTimers) {
                KeyGroupedInternalPriorityQueue<T> queue =
                        queuesManager.createOrUpdate(
                                stateName,
                                byteOrderedElementSerializer,
                                allowFutureMetadataUpdates);
                moveNativeTimers(stateName, queue);
                return queue;
            }
            return createNativeQueue(stateName, byteOrderedElementSerializer);
        } catch (IOException | StateMigrationException e) {
            throw new FlinkRuntimeException(
                    "cannot create timer queue '" + stateName + "': " + e.getMessage(), e);
        }
    }

    @SuppressWarnings("unchecked")
    private <T extends HeapPriorityQueueElement & PriorityComparable<? super T> & Keyed<?>>
            KeyGroupedInternalPriorityQueue<T> createNativeQueue(
                    String name, TypeSerializer<T> serializer)
                    throws IOException, StateMigrationException {
        byte[] known = NativeBridge.restoredState(handle.id(), name);
        if (known != null) {
            if (known[0] != NativeBridge.KIND_SORTED_SET) {
                throw new StateMigrationException(
                        "state '" + name + "' is a key/value state, not a timer queue");
            }
            serializer =
                    StateMetadata.checkQueueCompatible(
                            name,
                            Arrays.copyOfRange(known, 1, known.length),
                            userCodeClassLoader,
                            serializer);
        }
        int id =
                NativeBridge.registerState(
                        handle.id(),
                        name,
                        NativeBridge.KIND_SORTED_SET,
                        StateMetadata.encodeQueue(serializer.snapshotConfiguration()));
        NativeTimerQueue<T> existing = (NativeTimerQueue<T>) timerQueues.get(name);
        if (existing != null) {
            existing.updateSerializer(serializer);
            return existing.queue();
        }
        NativeTimerQueue<T> queue = timerQueue(id, name, serializer);
        timerQueues.put(name, queue);
        if (metrics != null) {
            metrics.stateRegistered(id, name);
        }
        return queue.queue();
    }

    private <T extends HeapPriorityQueueElement & PriorityComparable<? super T> & Keyed<?>>
            NativeTimerQueue<T> timerQueue(int id, String name, TypeSerializer<T> serializer) {
        if (timerAccess == null) {
            timerAccess = newAccess();
        }
        return new NativeTimerQueue<>(
                handle,
                timerAccess,
                id,
                name,
                serializer,
                KeyExtractorFunction.forKeyedObjects(),
                PriorityComparator.forPriorityComparableObjects(),
                keyGroupRange,
                numberOfKeyGroups);
    }

    /**
     * Moves the timers of a native queue restored under {@code name} (a snapshot taken with native
     * timers) into the heap queue that replaces it, and empties the native one: timers now go to
     * raw keyed state with each checkpoint, and a later restore must not find them twice.
     */
    @SuppressWarnings("unchecked")
    private <T extends HeapPriorityQueueElement & PriorityComparable<? super T> & Keyed<?>>
            void moveNativeTimers(String name, KeyGroupedInternalPriorityQueue<T> heap)
                    throws IOException {
        byte[] known = NativeBridge.restoredState(handle.id(), name);
        if (known == null || known[0] != NativeBridge.KIND_SORTED_SET) {
            return;
        }
        byte[] metadata = Arrays.copyOfRange(known, 1, known.length);
        TypeSerializer<T> restored =
                (TypeSerializer<T>)
                        StateMetadata.decodeQueue(name, metadata, userCodeClassLoader)
                                .restoreSerializer();
        int id =
                NativeBridge.registerState(
                        handle.id(), name, NativeBridge.KIND_SORTED_SET, metadata);
        KeyGroupedInternalPriorityQueue<T> natives = timerQueue(id, name, restored).queue();
        for (T timer = natives.poll(); timer != null; timer = natives.poll()) {
            heap.add(timer);
        }
    }

    @Override
    public boolean requiresLegacySynchronousTimerSnapshots(SnapshotType checkpointType) {
        // Native timers are native state. Heap timers: canonical savepoints carry them as states
        // (see savepoint()); checkpoints and native savepoints have Flink write them into raw
        // keyed state.
        return !nativeTimers && !isCanonicalSavepoint(checkpointType);
    }

    private static boolean isCanonicalSavepoint(SnapshotType type) {
        return type.isSavepoint()
                && type instanceof SavepointType
                && ((SavepointType) type).getFormatType() == SavepointFormatType.CANONICAL;
    }

    // ---- snapshots ----------------------------------------------------------------------------

    @Override
    public RunnableFuture<SnapshotResult<KeyedStateHandle>> snapshot(
            long checkpointId,
            long timestamp,
            CheckpointStreamFactory streamFactory,
            CheckpointOptions checkpointOptions)
            throws Exception {
        if (NativeBridge.stateNames(handle.id()).length == 0) {
            // No keyed state at all: no handle, as Flink's backends (timers, if any, are in the
            // raw keyed state Flink writes itself).
            return DoneFuture.of(SnapshotResult.empty());
        }
        if (fileStrategy != null
                && !checkpointOptions.getCheckpointType().isSavepoint()
                && (fileStrategy.mode() == NativeIncrementalSnapshotStrategy.Mode.INCREMENTAL
                        || snapshotFilters() == null)) {
            return new SnapshotStrategyRunner<>(
                            description,
                            fileStrategy,
                            cancelStreamRegistry,
                            SnapshotExecutionType.ASYNCHRONOUS)
                    .snapshot(checkpointId, timestamp, streamFactory, checkpointOptions);
        }
        // The heap backends' checkpoints; full RocksDB checkpoints of a state with TTL's
        // cleanupFullSnapshot (streamed through its filter); native savepoints (self-contained,
        // in the common format any native backend restores).
        return new SnapshotStrategyRunner<>(
                        description,
                        snapshotStrategy,
                        cancelStreamRegistry,
                        SnapshotExecutionType.ASYNCHRONOUS)
                .snapshot(checkpointId, timestamp, streamFactory, checkpointOptions);
    }

    @Override
    public SavepointResources<K> savepoint() throws IOException {
        Map<String, TypeSerializer<?>> namespaceSerializers = new HashMap<>();
        states.forEach((name, state) -> namespaceSerializers.put(name, state.namespaceSerializer));
        List<HeapPriorityQueueStateSnapshot<?>> queueSnapshots = new ArrayList<>();
        for (HeapPriorityQueueSnapshotRestoreWrapper<?> queue : queues.values()) {
            queueSnapshots.add(queue.stateSnapshot());
        }
        return new SavepointResources<>(
                new CanonicalSavepoint<>(
                        handle,
                        keyGroupRange,
                        numberOfKeyGroups,
                        keySerializer,
                        keyGroupCompressionDecorator,
                        userCodeClassLoader,
                        namespaceSerializers,
                        queueSnapshots,
                        nativeTimers,
                        snapshotFilters()),
                SnapshotExecutionType.ASYNCHRONOUS);
    }

    @Override
    public void notifyCheckpointComplete(long checkpointId) {
        if (fileStrategy != null) {
            fileStrategy.notifyCheckpointComplete(checkpointId);
        }
    }

    @Override
    public void notifyCheckpointAborted(long checkpointId) {
        if (fileStrategy != null) {
            fileStrategy.notifyCheckpointAborted(checkpointId);
        }
    }

    // ---- lifecycle ------------------------------------------------------------------------------

    @Override
    public void dispose() {
        super.dispose();
        states.clear();
        handle.close();
    }

    @Override
    public void close() throws IOException {
        super.close();
        handle.close();
    }

    @Override
    public String toString() {
        return description;
    }
}
