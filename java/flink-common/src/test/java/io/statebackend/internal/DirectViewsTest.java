package io.statebackend.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.api.common.typeutils.base.StringSerializer;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.core.memory.DataOutputViewStreamWrapper;
import org.junit.jupiter.api.Test;

/**
 * The direct-buffer views write what {@link java.io.DataOutput} specifies and read as Flink's own
 * {@link DataInputDeserializer} does, across buffer growth.
 */
class DirectViewsTest {
    private static final String TEXT = "ascii, \u0000, \u00e9t\u00e9, \u4e2d\u6587, \ud83d\ude00";

    /** Every {@link java.io.DataOutput} method, twice over, to outgrow a small buffer. */
    private static void writeAll(DataOutputView out) throws IOException {
        for (int round = 0; round < 2; round++) {
            out.write(0x1ff);
            out.write(new byte[] {1, 2, 3});
            out.write(new byte[] {4, 5, 6, 7}, 1, 2);
            out.writeBoolean(true);
            out.writeBoolean(false);
            out.writeByte(-3);
            out.writeShort(-12345);
            out.writeChar('\u4e2d');
            out.writeInt(0x89abcdef);
            out.writeLong(0x0123456789abcdefL);
            out.writeFloat(-1.5f);
            out.writeDouble(Math.PI);
            out.writeBytes("bytes\u0101");
            out.writeChars("chars\u0101");
            out.writeUTF(TEXT);
            out.write(new byte[300]);
        }
    }

    /**
     * The reference is {@link java.io.DataOutputStream}: Flink's {@link DataOutputSerializer}
     * leaves a gap after {@code writeBytes} (it advances its position twice), which no serializer
     * can read back.
     */
    private static byte[] reference() throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        writeAll(new DataOutputViewStreamWrapper(bytes));
        return bytes.toByteArray();
    }

    @Test
    void outputMatchesJavasDataOutputAcrossGrowth() throws IOException {
        DirectOutputView direct = new DirectOutputView(16);
        ByteBuffer first = direct.buffer();
        writeAll(direct);
        assertThat(direct.grown()).isTrue();
        assertThat(direct.buffer()).isNotSameAs(first);
        assertThat(bytes(direct.buffer(), direct.position())).isEqualTo(reference());
        direct.registered();
        assertThat(direct.grown()).isFalse();
    }

    @Test
    void inputReadsAsFlinksDeserializer() throws IOException {
        byte[] data = reference();
        ByteBuffer buffer = ByteBuffer.allocateDirect(data.length + 10);
        buffer.put(0, data);
        DirectInputView in = new DirectInputView().reset(buffer, data.length);
        DataInputDeserializer reference = new DataInputDeserializer(data);
        for (int round = 0; round < 2; round++) {
            assertThat(in.readUnsignedByte()).isEqualTo(reference.readUnsignedByte());
            byte[] three = new byte[3];
            in.readFully(three);
            assertThat(three).containsExactly(1, 2, 3);
            reference.skipBytesToRead(3);
            assertThat(in.readByte()).isEqualTo((byte) 5);
            assertThat(in.readByte()).isEqualTo((byte) 6);
            reference.skipBytesToRead(2);
            assertThat(in.readBoolean()).isEqualTo(reference.readBoolean());
            assertThat(in.readBoolean()).isEqualTo(reference.readBoolean());
            assertThat(in.readByte()).isEqualTo(reference.readByte());
            assertThat(in.readShort()).isEqualTo(reference.readShort());
            assertThat(in.readChar()).isEqualTo(reference.readChar());
            assertThat(in.readInt()).isEqualTo(reference.readInt());
            assertThat(in.readLong()).isEqualTo(reference.readLong());
            assertThat(in.readFloat()).isEqualTo(reference.readFloat());
            assertThat(in.readDouble()).isEqualTo(reference.readDouble());
            in.skipBytesToRead(6);
            reference.skipBytesToRead(6);
            for (int i = 0; i < 6; i++) {
                assertThat(in.readChar()).isEqualTo(reference.readChar());
            }
            assertThat(in.readUTF()).isEqualTo(TEXT).isEqualTo(reference.readUTF());
            assertThat(in.skipBytes(300)).isEqualTo(300);
            reference.skipBytesToRead(300);
        }
        assertThat(in.available()).isZero();
        assertThatThrownBy(in::readByte).isInstanceOf(EOFException.class);
        assertThat(in.read(new byte[4], 0, 4)).isEqualTo(-1);
        assertThat(in.readLine()).isNull();
    }

    @Test
    void readsStopAtTheLimit() throws IOException {
        ByteBuffer buffer = ByteBuffer.allocateDirect(64);
        buffer.putLong(0, 42L);
        DirectInputView in = new DirectInputView().reset(buffer, 6);
        assertThatThrownBy(in::readLong).isInstanceOf(EOFException.class);
        assertThat(in.position()).isZero();
        byte[] some = new byte[10];
        assertThat(in.read(some)).isEqualTo(6);
        in.reset(buffer, 8);
        assertThat(in.readInt()).isZero();
        assertThatThrownBy(() -> in.skipTo(2))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("2 bytes past its field");
        assertThatThrownBy(() -> in.skipTo(9)).isInstanceOf(EOFException.class);
        in.skipTo(8);
        assertThat(in.available()).isZero();
    }

    @Test
    void linesEndAtAnyLineTerminator() throws IOException {
        byte[] data =
                "one\ntwo\r\nthree\rfour".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1);
        ByteBuffer buffer = ByteBuffer.allocateDirect(data.length);
        buffer.put(0, data);
        DirectInputView in = new DirectInputView().reset(buffer, data.length);
        assertThat(in.readLine()).isEqualTo("one");
        assertThat(in.readLine()).isEqualTo("two");
        assertThat(in.readLine()).isEqualTo("three");
        assertThat(in.readLine()).isEqualTo("four");
        assertThat(in.readLine()).isNull();
    }

    /**
     * List elements are written in place with a one-byte length, moved when the length needs more
     * bytes: the result is the list encoding, {@code varint(len) ‖ bytes} per element.
     */
    @Test
    void elementsGetTheirLengthInFront() throws IOException {
        NativeAccess access = new NativeAccess(new NativeHandle(0, SlotMemory.none()));
        DataOutputSerializer expected = new DataOutputSerializer(16);
        DataOutputSerializer element = new DataOutputSerializer(16);
        // Lengths around the varint boundaries (1, 2 and 3 bytes); the buffer grows on the way.
        for (int chars : new int[] {0, 1, 125, 126, 127, 200, 16381, 16382, 20000, 3}) {
            char[] text = new char[chars];
            Arrays.fill(text, 'x');
            String value = new String(text);
            access.appendElement(StringSerializer.INSTANCE, value);
            element.clear();
            StringSerializer.INSTANCE.serialize(value, element);
            NativeListState.writeVarint(expected, element.length());
            expected.write(element.getSharedBuffer(), 0, element.length());
        }
        assertThat(bytes(access.in(), access.position())).isEqualTo(expected.getCopyOfBuffer());
    }

    /**
     * Elements of a fixed-length serializer get their length byte before they are written; one that
     * writes another length than its {@code getLength()} still gets the list encoding.
     */
    @Test
    void fixedLengthElementsAndSerializersThatWriteAnotherLength() throws IOException {
        NativeAccess access = new NativeAccess(new NativeHandle(0, SlotMemory.none()));
        DataOutputSerializer expected = new DataOutputSerializer(16);
        for (long v : new long[] {0, -1, Long.MIN_VALUE, 42}) {
            access.appendFixedElement(LongSerializer.INSTANCE, v, 8);
            expected.writeByte(8);
            expected.writeLong(v);
        }
        TypeSerializer<String> claimsFour = new StringClaimingFourBytes();
        for (int chars : new int[] {0, 3, 100, 200, 20000}) {
            String value = "y".repeat(chars);
            access.appendFixedElement(claimsFour, value, claimsFour.getLength());
            DataOutputSerializer element = new DataOutputSerializer(16);
            StringSerializer.INSTANCE.serialize(value, element);
            NativeListState.writeVarint(expected, element.length());
            expected.write(element.getSharedBuffer(), 0, element.length());
        }
        assertThat(bytes(access.in(), access.position())).isEqualTo(expected.getCopyOfBuffer());
    }

    /** Strings, with a fixed length of 4 bytes declared (wrongly). */
    private static final class StringClaimingFourBytes extends TypeSerializerSingleton<String> {
        @Override
        public boolean isImmutableType() {
            return true;
        }

        @Override
        public String createInstance() {
            return "";
        }

        @Override
        public String copy(String from) {
            return from;
        }

        @Override
        public String copy(String from, String reuse) {
            return from;
        }

        @Override
        public int getLength() {
            return 4;
        }

        @Override
        public void serialize(String record, DataOutputView target) throws IOException {
            StringSerializer.INSTANCE.serialize(record, target);
        }

        @Override
        public String deserialize(DataInputView source) throws IOException {
            return StringSerializer.INSTANCE.deserialize(source);
        }

        @Override
        public String deserialize(String reuse, DataInputView source) throws IOException {
            return deserialize(source);
        }

        @Override
        public void copy(DataInputView source, DataOutputView target) throws IOException {
            StringSerializer.INSTANCE.copy(source, target);
        }

        @Override
        public TypeSerializerSnapshot<String> snapshotConfiguration() {
            return new Snapshot();
        }

        /** Its snapshot (Flink restores snapshots through a public no-argument constructor). */
        public static final class Snapshot extends SimpleTypeSerializerSnapshot<String> {
            public Snapshot() {
                super(StringClaimingFourBytes::new);
            }
        }
    }

    private static byte[] bytes(ByteBuffer buffer, int len) {
        byte[] out = new byte[len];
        buffer.get(0, out, 0, len);
        return out;
    }
}
