package io.statebackend.internal;

import java.io.IOException;
import java.util.function.UnaryOperator;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.base.ListSerializer;
import org.apache.flink.api.common.typeutils.base.MapSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.state.ttl.TtlStateFactory;
import org.apache.flink.runtime.state.ttl.TtlValue;
import org.apache.flink.util.StateMigrationException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Flink's state migration on the native backends: when a restored state's new serializer can read
 * the old bytes only after migration ({@code compatibleAfterMigration}: a POJO that gained a field,
 * an evolved Avro schema), every entry is read with the serializer it was written with and written
 * again with the new one, before the state is used. The core walks the state and writes (see {@code
 * StateBackend::migrate_state}); this class maps old bytes to new, a batch at a time.
 *
 * <p>Values, list elements and map values are migrated; map user keys too, when their serializer
 * changes (each map is then rewritten whole). Keys and namespaces are not: Flink requires their
 * serializers to be compatible as they are or after reconfiguration.
 */
final class StateMigration implements NativeBridge.Migrator {
    private static final Logger LOG = LoggerFactory.getLogger(StateMigration.class);

    private final StateDescriptor.Type type;
    private final TypeSerializer<Object> previous;
    private final TypeSerializer<Object> current;
    private final TypeSerializer<Object> previousUserKey;
    private final TypeSerializer<Object> currentUserKey;

    /**
     * Turning TTL on or off (Flink 2.x allows it): the previous values carry TTL timestamps and the
     * current ones not, or the other way round. Values that gain TTL are stamped {@code now}.
     */
    private final boolean previousTtl;

    private final boolean currentTtl;
    private final long now;

    private final DataInputDeserializer in = new DataInputDeserializer();
    private final DataOutputSerializer out = new DataOutputSerializer(4096);
    private final DataOutputSerializer scratch = new DataOutputSerializer(256);
    private final DataOutputSerializer element = new DataOutputSerializer(64);

    /**
     * For lists and maps, {@code previous} and {@code current} are the state's serializers ({@link
     * ListSerializer}, {@link MapSerializer}); the migration works on their elements and entries.
     * {@code userKeysChange}: a map's user keys are migrated too.
     */
    @SuppressWarnings("unchecked")
    private StateMigration(
            StateDescriptor.Type type,
            TypeSerializer<?> previous,
            TypeSerializer<?> current,
            boolean userKeysChange,
            long now) {
        this.type = type;
        this.now = now;
        switch (type) {
            case LIST:
                this.previous =
                        (TypeSerializer<Object>)
                                ((ListSerializer<?>) previous).getElementSerializer();
                this.current =
                        (TypeSerializer<Object>)
                                ((ListSerializer<?>) current).getElementSerializer();
                this.previousUserKey = null;
                this.currentUserKey = null;
                break;
            case MAP:
                this.previous =
                        (TypeSerializer<Object>)
                                ((MapSerializer<?, ?>) previous).getValueSerializer();
                this.current =
                        (TypeSerializer<Object>)
                                ((MapSerializer<?, ?>) current).getValueSerializer();
                this.previousUserKey =
                        userKeysChange
                                ? (TypeSerializer<Object>)
                                        ((MapSerializer<?, ?>) previous).getKeySerializer()
                                : null;
                this.currentUserKey =
                        userKeysChange
                                ? (TypeSerializer<Object>)
                                        ((MapSerializer<?, ?>) current).getKeySerializer()
                                : null;
                break;
            default:
                this.previous = (TypeSerializer<Object>) previous;
                this.current = (TypeSerializer<Object>) current;
                this.previousUserKey = null;
                this.currentUserKey = null;
        }
        this.previousTtl = this.previous instanceof TtlStateFactory.TtlSerializer;
        this.currentTtl = this.current instanceof TtlStateFactory.TtlSerializer;
    }

    /** A previous value as the current serializer expects it: with or without TTL. */
    private Object withCurrentTtl(Object value) {
        if (previousTtl == currentTtl || value == null) {
            return value;
        }
        return previousTtl ? ((TtlValue<?>) value).getUserValue() : new TtlValue<>(value, now);
    }

    /**
     * Migrates state {@code name} (native id {@code stateId}) from {@code previous} to {@code
     * current}. A serializer that fails on an old entry fails the migration with a {@link
     * StateMigrationException}; the backend is then only partly migrated and must be discarded (its
     * restore fails, the snapshot stays as it was).
     */
    static void run(
            NativeHandle backend,
            int stateId,
            String name,
            StateDescriptor.Type type,
            TypeSerializer<?> previous,
            TypeSerializer<?> current,
            boolean userKeysChange,
            long now)
            throws StateMigrationException {
        long start = System.nanoTime();
        long[] stats;
        try {
            stats =
                    NativeBridge.migrateState(
                            backend.id(),
                            stateId,
                            userKeysChange,
                            new StateMigration(type, previous, current, userKeysChange, now));
        } catch (RuntimeException e) {
            throw new StateMigrationException(
                    "state '"
                            + name
                            + "': migrating its entries from "
                            + previous
                            + " to "
                            + current
                            + " failed: "
                            + e.getMessage(),
                    e);
        }
        LOG.info(
                "Migrated state '{}' ({}) from {} to {}: {} entries, {} bytes read, {} bytes"
                        + " written, in {} ms",
                name,
                type,
                previous,
                current,
                stats[0],
                stats[1],
                stats[2],
                (System.nanoTime() - start) / 1_000_000);
    }

    @Override
    public byte[] migrate(byte[] entries) throws IOException {
        in.setBuffer(entries);
        out.clear();
        while (in.available() > 0) {
            int userKeyLen = in.readInt();
            if (currentUserKey == null) {
                out.writeInt(userKeyLen);
                out.write(in, userKeyLen);
            } else {
                writeField(
                        migrateOne(
                                userKeyLen,
                                previousUserKey,
                                currentUserKey,
                                UnaryOperator.identity()));
            }
            int valueLen = in.readInt();
            switch (type) {
                case LIST:
                    writeField(migrateList(valueLen));
                    break;
                case MAP:
                    writeField(migrateMapValue(valueLen));
                    break;
                default:
                    writeField(migrateOne(valueLen, previous, current, this::withCurrentTtl));
            }
        }
        return out.getCopyOfBuffer();
    }

    private void writeField(DataOutputSerializer bytes) throws IOException {
        out.writeInt(bytes.length());
        out.write(bytes.getSharedBuffer(), 0, bytes.length());
    }

    /**
     * The next {@code len} bytes of the input, read with one serializer, converted, written with
     * another.
     */
    private DataOutputSerializer migrateOne(
            int len,
            TypeSerializer<Object> from,
            TypeSerializer<Object> to,
            UnaryOperator<Object> convert)
            throws IOException {
        int end = in.getPosition() + len;
        Object value = convert.apply(from.deserialize(in));
        checkConsumed(end);
        scratch.clear();
        to.serialize(value, scratch);
        return scratch;
    }

    /** A list's elements ({@code varint(len) ‖ element} each), each migrated. */
    private DataOutputSerializer migrateList(int len) throws IOException {
        int end = in.getPosition() + len;
        scratch.clear();
        while (in.getPosition() < end) {
            int elementLen = NativeListState.readVarint(in);
            int elementEnd = in.getPosition() + elementLen;
            Object value = withCurrentTtl(previous.deserialize(in));
            checkConsumed(elementEnd);
            element.clear();
            current.serialize(value, element);
            NativeListState.writeVarint(scratch, element.length());
            scratch.write(element.getSharedBuffer(), 0, element.length());
        }
        checkConsumed(end);
        return scratch;
    }

    /** A map value as stored, {@code null flag ‖ value}, migrated. */
    private DataOutputSerializer migrateMapValue(int len) throws IOException {
        int end = in.getPosition() + len;
        boolean isNull = in.readBoolean();
        Object value = isNull ? null : withCurrentTtl(previous.deserialize(in));
        checkConsumed(end);
        scratch.clear();
        scratch.writeBoolean(isNull);
        if (!isNull) {
            current.serialize(value, scratch);
        }
        return scratch;
    }

    /** An old serializer must read exactly the bytes it once wrote. */
    private void checkConsumed(int end) throws IOException {
        if (in.getPosition() != end) {
            throw new IOException(
                    "the restored serializer "
                            + previous
                            + " read "
                            + (in.getPosition() < end ? "fewer" : "more")
                            + " bytes than the entry holds: it is not the serializer the state"
                            + " was written with");
        }
    }
}
