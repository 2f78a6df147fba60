package io.statebackend.internal;

import java.io.IOException;
import java.util.function.Supplier;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.MapSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.util.StateMigrationException;

/**
 * The metadata the native core keeps with each state and returns on restore: the Flink state type
 * and the snapshots of the key, namespace and value serializers, so a restored state is checked
 * against the serializers it is registered with again.
 */
final class StateMetadata {
    private static final int VERSION = 1;

    private StateMetadata() {}

    static byte[] encode(
            StateDescriptor.Type type,
            TypeSerializer<?> keySerializer,
            TypeSerializer<?> namespaceSerializer,
            TypeSerializer<?> valueSerializer)
            throws IOException {
        return encode(
                type,
                keySerializer.snapshotConfiguration(),
                namespaceSerializer.snapshotConfiguration(),
                valueSerializer.snapshotConfiguration());
    }

    /** The metadata of a state from its serializers' snapshots (a canonical savepoint's). */
    static byte[] encode(
            StateDescriptor.Type type,
            TypeSerializerSnapshot<?> keySerializer,
            TypeSerializerSnapshot<?> namespaceSerializer,
            TypeSerializerSnapshot<?> valueSerializer)
            throws IOException {
        DataOutputSerializer out = new DataOutputSerializer(256);
        out.writeInt(VERSION);
        out.writeUTF(type.name());
        for (TypeSerializerSnapshot<?> s :
                new TypeSerializerSnapshot<?>[] {
                    keySerializer, namespaceSerializer, valueSerializer
                }) {
            TypeSerializerSnapshot.writeVersionedSnapshot(out, s);
        }
        return out.getCopyOfBuffer();
    }

    /** The type a timer queue's metadata records instead of a {@link StateDescriptor.Type}. */
    private static final String PRIORITY_QUEUE = "PRIORITY_QUEUE";

    /** The metadata of a timer queue (a native sorted set): its element serializer. */
    static byte[] encodeQueue(TypeSerializerSnapshot<?> elementSerializer) throws IOException {
        DataOutputSerializer out = new DataOutputSerializer(128);
        out.writeInt(VERSION);
        out.writeUTF(PRIORITY_QUEUE);
        TypeSerializerSnapshot.writeVersionedSnapshot(out, elementSerializer);
        return out.getCopyOfBuffer();
    }

    /** The element serializer snapshot of a timer queue's metadata. */
    static TypeSerializerSnapshot<?> decodeQueue(String name, byte[] metadata, ClassLoader loader)
            throws IOException {
        DataInputDeserializer in = new DataInputDeserializer(metadata);
        int version = in.readInt();
        String type = in.readUTF();
        if (version != VERSION || !PRIORITY_QUEUE.equals(type)) {
            throw new IOException(
                    "state '"
                            + name
                            + "' is not a timer queue in the snapshot (version "
                            + version
                            + ", type "
                            + type
                            + ")");
        }
        return TypeSerializerSnapshot.readVersionedSnapshot(in, loader);
    }

    /**
     * The element serializer a restored timer queue is used with: {@code serializer}, or the
     * reconfigured one Flink's check gives. Timers are ordered by their serialized bytes, so they
     * are never migrated: anything else is a {@link StateMigrationException}, as in Flink's RocksDB
     * backend.
     */
    @SuppressWarnings("unchecked")
    static <T> TypeSerializer<T> checkQueueCompatible(
            String name, byte[] metadata, ClassLoader loader, TypeSerializer<T> serializer)
            throws IOException, StateMigrationException {
        TypeSerializerSnapshot<?> old = decodeQueue(name, metadata, loader);
        TypeSerializerSchemaCompatibility<T> compatibility = resolve(serializer, old);
        if (compatibility.isCompatibleAsIs()) {
            return serializer;
        }
        if (compatibility.isCompatibleWithReconfiguredSerializer()) {
            return compatibility.getReconfiguredSerializer();
        }
        throw new StateMigrationException(
                "The new element serializer ("
                        + serializer
                        + ") of timer queue '"
                        + name
                        + "' is "
                        + compatibility
                        + " with the restored one ("
                        + old.getClass().getName()
                        + "): timers are ordered by their serialized bytes and are not migrated");
    }

    /** A state's metadata, decoded. */
    static final class Decoded {
        final StateDescriptor.Type type;
        final TypeSerializerSnapshot<?> keySerializer;
        final TypeSerializerSnapshot<?> namespaceSerializer;
        final TypeSerializerSnapshot<?> valueSerializer;

        Decoded(
                StateDescriptor.Type type,
                TypeSerializerSnapshot<?> keySerializer,
                TypeSerializerSnapshot<?> namespaceSerializer,
                TypeSerializerSnapshot<?> valueSerializer) {
            this.type = type;
            this.keySerializer = keySerializer;
            this.namespaceSerializer = namespaceSerializer;
            this.valueSerializer = valueSerializer;
        }
    }

    static Decoded decode(String name, byte[] metadata, ClassLoader classLoader)
            throws IOException {
        DataInputDeserializer in = new DataInputDeserializer(metadata);
        int version = in.readInt();
        if (version != VERSION) {
            throw new IOException(
                    "state '" + name + "': unknown metadata version " + version + " in snapshot");
        }
        StateDescriptor.Type type = StateDescriptor.Type.valueOf(in.readUTF());
        return new Decoded(
                type,
                TypeSerializerSnapshot.readVersionedSnapshot(in, classLoader),
                TypeSerializerSnapshot.readVersionedSnapshot(in, classLoader),
                TypeSerializerSnapshot.readVersionedSnapshot(in, classLoader));
    }

    /**
     * How a restored state is used with its new registration: the serializers to use (the namespace
     * and value serializers reconfigured where Flink's compatibility check says so), and the
     * serializer the values were written with when they must be migrated first.
     */
    static final class Resolution {
        final TypeSerializer<?> namespaceSerializer;
        final TypeSerializer<?> valueSerializer;

        /** The serializer the restored values were written with, or null: no migration. */
        final TypeSerializer<?> migrateFrom;

        /** For a map to migrate: whether its user keys change too. */
        final boolean userKeysChange;

        Resolution(
                TypeSerializer<?> namespaceSerializer,
                TypeSerializer<?> valueSerializer,
                TypeSerializer<?> migrateFrom,
                boolean userKeysChange) {
            this.namespaceSerializer = namespaceSerializer;
            this.valueSerializer = valueSerializer;
            this.migrateFrom = migrateFrom;
            this.userKeysChange = userKeysChange;
        }
    }

    /**
     * Checks a restored state against its new registration, with Flink's rules: the same state
     * type; a key serializer compatible as it is (the backend resolved it once for all states when
     * it was restored); a namespace serializer compatible as it is or once reconfigured; a value
     * serializer compatible as it is, once reconfigured (e.g. Kryo registrations in another order),
     * or after migration (a POJO that gained a field: the values are rewritten, see {@link
     * StateMigration}). Anything else is a {@link StateMigrationException} naming the state and the
     * serializers.
     */
    @SuppressWarnings("unchecked")
    static Resolution checkCompatible(
            String name,
            byte[] metadata,
            StateDescriptor.Type type,
            ClassLoader classLoader,
            TypeSerializer<?> keySerializer,
            TypeSerializer<?> namespaceSerializer,
            TypeSerializer<?> valueSerializer)
            throws IOException, StateMigrationException {
        DataInputDeserializer in = new DataInputDeserializer(metadata);
        int version = in.readInt();
        if (version != VERSION) {
            throw new IOException(
                    "state '" + name + "': unknown metadata version " + version + " in snapshot");
        }
        String oldType = in.readUTF();
        if (!oldType.equals(type.name())) {
            throw new StateMigrationException(
                    "state '"
                            + name
                            + "' was a "
                            + oldType
                            + " state and is now registered as "
                            + type);
        }
        TypeSerializerSnapshot<?> oldKey =
                TypeSerializerSnapshot.readVersionedSnapshot(in, classLoader);
        TypeSerializerSnapshot<?> oldNamespace =
                TypeSerializerSnapshot.readVersionedSnapshot(in, classLoader);
        TypeSerializerSnapshot<?> oldValue =
                TypeSerializerSnapshot.readVersionedSnapshot(in, classLoader);

        TypeSerializerSchemaCompatibility<?> key = resolve(keySerializer, oldKey);
        if (!key.isCompatibleAsIs()) {
            throw incompatible(name, "key", keySerializer, oldKey, key, "");
        }
        TypeSerializerSchemaCompatibility<?> namespace = resolve(namespaceSerializer, oldNamespace);
        if (namespace.isCompatibleWithReconfiguredSerializer()) {
            namespaceSerializer = namespace.getReconfiguredSerializer();
        } else if (!namespace.isCompatibleAsIs()) {
            throw incompatible(
                    name,
                    "namespace",
                    namespaceSerializer,
                    oldNamespace,
                    namespace,
                    "; namespaces are not migrated, their serializer must be compatible as it is"
                            + " or after reconfiguration");
        }
        // Restored once, when first needed: by a migration, or on Flink 2.x by the TTL-aware
        // resolution, before it rewraps the snapshot.
        TypeSerializer<?>[] restored = new TypeSerializer<?>[1];
        Supplier<TypeSerializer<Object>> previousSerializer =
                () -> {
                    if (restored[0] == null) {
                        restored[0] = oldValue.restoreSerializer();
                    }
                    return (TypeSerializer<Object>) restored[0];
                };
        TypeSerializerSchemaCompatibility<?> value =
                FlinkLine.resolveValueSerializer(
                        (TypeSerializer<Object>) valueSerializer,
                        (TypeSerializerSnapshot<Object>) oldValue,
                        previousSerializer);
        if (value.isCompatibleAsIs()) {
            return new Resolution(namespaceSerializer, valueSerializer, null, false);
        }
        if (value.isCompatibleWithReconfiguredSerializer()) {
            return new Resolution(
                    namespaceSerializer, value.getReconfiguredSerializer(), null, false);
        }
        if (value.isCompatibleAfterMigration()) {
            TypeSerializer<?> previous = previousSerializer.get();
            boolean userKeysChange =
                    type == StateDescriptor.Type.MAP
                            && !resolve(
                                            ((MapSerializer<?, ?>) valueSerializer)
                                                    .getKeySerializer(),
                                            ((MapSerializer<?, ?>) previous)
                                                    .getKeySerializer()
                                                    .snapshotConfiguration())
                                    .isCompatibleAsIs();
            return new Resolution(namespaceSerializer, valueSerializer, previous, userKeysChange);
        }
        throw incompatible(name, "value", valueSerializer, oldValue, value, "");
    }

    private static StateMigrationException incompatible(
            String name,
            String role,
            TypeSerializer<?> serializer,
            TypeSerializerSnapshot<?> old,
            TypeSerializerSchemaCompatibility<?> compatibility,
            String why) {
        return new StateMigrationException(
                "state '"
                        + name
                        + "': the new "
                        + role
                        + " serializer "
                        + serializer
                        + " is "
                        + compatibility
                        + " with the restored one (snapshot "
                        + old.getClass().getName()
                        + ")"
                        + why);
    }

    /** The serializer snapshots of a state's metadata: key, namespace, value. */
    private static TypeSerializerSnapshot<?>[] snapshots(
            String name, byte[] metadata, ClassLoader classLoader) throws IOException {
        DataInputDeserializer in = new DataInputDeserializer(metadata);
        int version = in.readInt();
        if (version != VERSION) {
            throw new IOException(
                    "state '" + name + "': unknown metadata version " + version + " in snapshot");
        }
        in.readUTF();
        TypeSerializerSnapshot<?>[] snapshots = new TypeSerializerSnapshot<?>[3];
        for (int i = 0; i < snapshots.length; i++) {
            snapshots[i] = TypeSerializerSnapshot.readVersionedSnapshot(in, classLoader);
        }
        return snapshots;
    }

    /**
     * The key serializer to use for a restored state written with the key serializer in its
     * metadata: {@code keySerializer} if it reads the old keys as they are, the reconfigured one if
     * Flink's check says so; else the restore fails, as in Flink's backends.
     */
    @SuppressWarnings("unchecked")
    static <K> TypeSerializer<K> resolveKeySerializer(
            String name, byte[] metadata, ClassLoader classLoader, TypeSerializer<K> keySerializer)
            throws IOException, StateMigrationException {
        TypeSerializerSnapshot<?> old = snapshots(name, metadata, classLoader)[0];
        TypeSerializerSchemaCompatibility<K> compatibility = resolve(keySerializer, old);
        if (compatibility.isCompatibleAsIs()) {
            return keySerializer;
        }
        if (compatibility.isCompatibleWithReconfiguredSerializer()) {
            return compatibility.getReconfiguredSerializer();
        }
        throw new StateMigrationException(
                "The new key serializer ("
                        + keySerializer
                        + ") must be compatible with the key serializer of restored state '"
                        + name
                        + "' as it is or after reconfiguration, but it is "
                        + compatibility
                        + ": keys are not migrated");
    }

    /** The namespace serializer a restored state was written with. */
    @SuppressWarnings("unchecked")
    static <N> TypeSerializer<N> restoredNamespaceSerializer(
            String name, byte[] metadata, ClassLoader classLoader) throws IOException {
        return (TypeSerializer<N>) snapshots(name, metadata, classLoader)[1].restoreSerializer();
    }

    @SuppressWarnings("unchecked")
    private static <T> TypeSerializerSchemaCompatibility<T> resolve(
            TypeSerializer<T> serializer, TypeSerializerSnapshot<?> old) {
        return serializer
                .snapshotConfiguration()
                .resolveSchemaCompatibility((TypeSerializerSnapshot<T>) old);
    }
}
