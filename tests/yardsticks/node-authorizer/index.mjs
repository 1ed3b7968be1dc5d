// A typical Node.js HTTP API Lambda authorizer (payload 2.0, simple responses), written as a
// team would write one with the usual libraries: jose verifies the key (an EdDSA JWT) and the
// AWS SDK v3 reads the key record and meters the call in DynamoDB. It is a yardstick for
// keygate's authorizer in BENCHMARKS.md, not part of keygate.
import { importJWK, jwtVerify } from "jose";
import { DynamoDBClient, GetItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";

const env = process.env;
const table = env.KEYGATE_TABLE;
const dynamodb = new DynamoDBClient({ endpoint: env.KEYGATE_DYNAMODB_ENDPOINT });
const key = await importJWK(JSON.parse(env.KEYGATE_SIGNING_PUBLIC_KEY), "EdDSA");

export async function handler(event) {
  const header = event.headers?.authorization ?? "";
  const token = header.startsWith("Bearer ") ? header.slice(7) : "";
  const project = event.pathParameters?.project ?? "";
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(token, key, {
      issuer: env.KEYGATE_ISSUER,
      audience: `project:${project}`,
      algorithms: ["EdDSA"],
    }));
  } catch {
    return { isAuthorized: false };
  }
  const record = await dynamodb.send(
    new GetItemCommand({
      TableName: table,
      Key: { pk: { S: `P#${project}` }, sk: { S: `KEY#${claims.jti}` } },
      ConsistentRead: true,
    }),
  );
  if (!record.Item) return { isAuthorized: false };
  const hour = new Date().toISOString().slice(0, 13);
  await dynamodb.send(
    new UpdateItemCommand({
      TableName: table,
      Key: { pk: { S: `USAGE#${claims.jti}#0` }, sk: { S: `H#${hour}` } },
      UpdateExpression: "ADD requests :one",
      ExpressionAttributeValues: { ":one": { N: "1" } },
    }),
  );
  return { isAuthorized: true, context: { keyId: claims.jti, userId: claims.sub, projectId: project } };
}
