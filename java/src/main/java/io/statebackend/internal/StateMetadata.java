package io.statebackend.internal;

import java.io.IOException;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
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
     * Checks a restored state against its new registration: same state type, and serializers that
     * can read the old bytes as they are or once reconfigured (Flink's {@code
     * COMPATIBLE_WITH_RECONFIGURED_SERIALIZER}, e.g. Kryo registrations in another order). Returns
     * the serializers to use: {@code [key, namespace, value]}, reconfigured where needed. The key
     * serializer must be compatible as it is (the backend has one for all states).
     */
    static TypeSerializer<?>[] checkCompatible(
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
        String[] roles = {"key", "namespace", "value"};
        TypeSerializer<?>[] serializers = {keySerializer, namespaceSerializer, valueSerializer};
        for (int i = 0; i < roles.length; i++) {
            TypeSerializerSnapshot<?> old =
                    TypeSerializerSnapshot.readVersionedSnapshot(in, classLoader);
            TypeSerializerSchemaCompatibility<?> compatibility = resolve(serializers[i], old);
            if (compatibility.isCompatibleWithReconfiguredSerializer() && i > 0) {
                serializers[i] = compatibility.getReconfiguredSerializer();
            } else if (!compatibility.isCompatibleAsIs()) {
                throw new StateMigrationException(
                        "state '"
                                + name
                                + "': the new "
                                + roles[i]
                                + " serializer is not compatible as-is with the restored one ("
                                + compatibility
                                + "); the native backend does not migrate state yet");
            }
        }
        return serializers;
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
     * Checks the key serializer a backend is restored with against the one a restored state was
     * written with, as Flink's backends do when they restore: a key serializer that cannot read the
     * old keys as they are fails the restore.
     */
    static void checkKeySerializer(
            String name, byte[] metadata, ClassLoader classLoader, TypeSerializer<?> keySerializer)
            throws IOException, StateMigrationException {
        TypeSerializerSchemaCompatibility<?> compatibility =
                resolve(keySerializer, snapshots(name, metadata, classLoader)[0]);
        if (!compatibility.isCompatibleAsIs()) {
            throw new StateMigrationException(
                    "The new key serializer ("
                            + keySerializer
                            + ") must be compatible with the key serializer of restored state '"
                            + name
                            + "' ("
                            + compatibility
                            + ")");
        }
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
