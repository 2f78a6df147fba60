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
     * can read the old bytes as they are.
     */
    static void checkCompatible(
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
            if (!compatibility.isCompatibleAsIs()) {
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
    }

    @SuppressWarnings("unchecked")
    private static <T> TypeSerializerSchemaCompatibility<T> resolve(
            TypeSerializer<T> serializer, TypeSerializerSnapshot<?> old) {
        return serializer
                .snapshotConfiguration()
                .resolveSchemaCompatibility((TypeSerializerSnapshot<T>) old);
    }
}
