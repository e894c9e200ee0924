{#- One row per candidate of a re-ranking request, with its position in the initial (cloud) order. -#}

with

features as (

    select * from {{ ref('stg_warehouse__features') }}

),

candidates as (

    {{ edgerec.unnest_positions('features', ['rerank_id', 'ds'], ['cand_item_id', 'label', 'mask']) }}

),

final as (

    select
        rerank_id,
        ds,
        position,
        cand_item_id as item_id,
        case when mask = 1 then label end as label

    from candidates

)

select * from final
